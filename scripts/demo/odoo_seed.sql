-- The demo's ERP: five Odoo contacts (res_partner, loaded after the schema
-- in tests/data/odoo_res_partner.sql). Odoo stores datetimes in UTC without
-- a zone; country 57 is DE in a stock Odoo install.
INSERT INTO res_partner
  (id, name, complete_name, is_company, function, email, phone, street, zip, city,
   country_id, lang, type, active, create_date, write_date)
VALUES
  (1, 'Anna Schmidt', 'Anna Schmidt', false, 'Sales Manager', 'anna.schmidt@example.com',
   '+49 30 1234567', 'Unter den Linden 5', '10117', 'Berlin', 57, 'de_DE', 'contact', true,
   now() at time zone 'utc' - interval '1 day', now() at time zone 'utc' - interval '1 day'),
  (2, 'Ben Müller', 'Ben Müller', false, 'Buyer', 'ben.mueller@example.com',
   '+49 89 7654321', 'Marienplatz 8', '80331', 'München', 57, 'de_DE', 'contact', true,
   now() at time zone 'utc' - interval '1 day', now() at time zone 'utc' - interval '1 day'),
  (3, 'Carla Rossi', 'Carla Rossi', false, 'Controller', 'carla.rossi@example.com',
   '+49 40 5550101', 'Jungfernstieg 1', '20354', 'Hamburg', 57, 'de_DE', 'contact', true,
   now() at time zone 'utc' - interval '1 day', now() at time zone 'utc' - interval '1 day'),
  (4, 'David Lee', 'David Lee', false, 'CTO', 'david.lee@example.com',
   '+49 221 5550202', 'Domkloster 4', '50667', 'Köln', 57, 'en_US', 'contact', true,
   now() at time zone 'utc' - interval '1 day', now() at time zone 'utc' - interval '1 day'),
  (5, 'Eva Novak', 'Eva Novak', false, 'Office Manager', 'eva.novak@example.com',
   '+49 711 5550303', 'Königstraße 1', '70173', 'Stuttgart', 57, 'de_DE', 'contact', true,
   now() at time zone 'utc' - interval '1 day', now() at time zone 'utc' - interval '1 day');
SELECT setval('res_partner_id_seq', 5);
