-- The demo's CRM: three SuiteCRM contacts (loaded after the schema in
-- tests/data/suitecrm.sql). Anna Schmidt and Ben Müller are the same people
-- as Odoo partners 1 and 2, spelled as a CRM user typed them: e-mail in
-- other case, phone numbers in national or punctuated form. Frank Weber is
-- only here. Each contact's primary e-mail lives in email_addresses, linked
-- through email_addr_bean_rel, as SuiteCRM keeps it.
INSERT INTO contacts
  (id, date_entered, date_modified, deleted, first_name, last_name, title,
   phone_work, primary_address_street, primary_address_city,
   primary_address_postalcode, primary_address_country)
VALUES
  ('c0ffee00-0000-4000-8000-000000000001', UTC_TIMESTAMP() - INTERVAL 1 DAY,
   UTC_TIMESTAMP() - INTERVAL 1 DAY, 0, 'Anna', 'Schmidt', 'Sales Manager',
   '030 1234567', 'Unter den Linden 5', 'Berlin', '10117', 'Germany'),
  ('c0ffee00-0000-4000-8000-000000000002', UTC_TIMESTAMP() - INTERVAL 1 DAY,
   UTC_TIMESTAMP() - INTERVAL 1 DAY, 0, 'Ben', 'Müller', 'Buyer',
   '+49 (89) 765-4321', 'Marienplatz 8', 'München', '80331', 'Germany'),
  ('c0ffee00-0000-4000-8000-000000000003', UTC_TIMESTAMP() - INTERVAL 1 DAY,
   UTC_TIMESTAMP() - INTERVAL 1 DAY, 0, 'Frank', 'Weber', 'Purchasing',
   '069 5550404', 'Zeil 10', 'Frankfurt am Main', '60313', 'Germany');

INSERT INTO email_addresses (id, email_address, email_address_caps, deleted) VALUES
  ('ea-1', 'ANNA.Schmidt@Example.com', 'ANNA.SCHMIDT@EXAMPLE.COM', 0),
  ('ea-2', 'Ben.Mueller@example.com', 'BEN.MUELLER@EXAMPLE.COM', 0),
  ('ea-3', 'frank.weber@example.com', 'FRANK.WEBER@EXAMPLE.COM', 0);

INSERT INTO email_addr_bean_rel
  (id, email_address_id, bean_id, bean_module, primary_address, deleted, date_modified)
VALUES
  ('rel-1', 'ea-1', 'c0ffee00-0000-4000-8000-000000000001', 'Contacts', 1, 0, UTC_TIMESTAMP()),
  ('rel-2', 'ea-2', 'c0ffee00-0000-4000-8000-000000000002', 'Contacts', 1, 0, UTC_TIMESTAMP()),
  ('rel-3', 'ea-3', 'c0ffee00-0000-4000-8000-000000000003', 'Contacts', 1, 0, UTC_TIMESTAMP());
