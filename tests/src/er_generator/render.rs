//! One entity as one system holds it: the system's columns, its default
//! phone region, and the corruptions of the profile applied at their rates.

use serde_json::Value;

use mdhub_schema::event::Fields;

use super::companies::Company;
use super::corrupt::{abbreviate_street, has_umlaut, transliterate, transpose, typo};
use super::layout::OA;
use super::names::nicknames_of;
use super::people::Person;
use super::phone::Phone;
use super::places::Address;
use super::rng::Rng;
use super::{Profile, SYSTEM_REGIONS};

pub enum Entity {
    Person(Person),
    Company(Company),
}

const CRM: usize = 0;
const ERP: usize = 1;

/// The full image system `system` holds of `entity`.
pub fn render(p: &Profile, entity: &Entity, system: usize, rng: &mut Rng) -> Fields {
    let mut w = Writer {
        p,
        rng,
        region: SYSTEM_REGIONS[system].1,
        fields: Fields::new(),
    };
    match entity {
        Entity::Person(person) => w.person(person, system),
        Entity::Company(company) => w.company(company, system),
    }
    if w.rng.chance(p.invalid_value_rate) {
        w.invalid_value();
    }
    w.fields
}

struct Writer<'a> {
    p: &'a Profile,
    rng: &'a mut Rng,
    region: &'static str,
    fields: Fields,
}

impl Writer<'_> {
    fn put(&mut self, field: &str, value: String) {
        self.fields.insert(field.to_string(), Value::String(value));
    }

    /// `value`, or null (the system's column is empty) at the missing rate.
    fn put_or_missing(&mut self, field: &str, value: String) {
        if self.rng.chance(self.p.missing_rate) {
            self.fields.insert(field.to_string(), Value::Null);
        } else {
            self.put(field, value);
        }
    }

    /// Typing damage to a name, street or city.
    fn damaged(&mut self, mut s: String) -> String {
        if has_umlaut(&s) && self.rng.chance(self.p.transliteration_rate) {
            s = transliterate(&s, self.rng.chance(0.2));
        }
        if self.rng.chance(self.p.typo_rate) {
            s = typo(&s, self.rng);
        }
        if self.rng.chance(self.p.transposition_rate) {
            s = transpose(&s, self.rng);
        }
        s
    }

    fn phone(&mut self, field: &str, phone: &Phone) {
        let international = self.rng.chance(self.p.international_phone_rate);
        let written = phone.written(self.region, international, self.rng);
        self.put_or_missing(field, written);
    }

    fn email(&mut self, usual: &str, other: &str) {
        let mut email = if self.rng.chance(self.p.other_email_rate) {
            other.to_string()
        } else {
            usual.to_string()
        };
        if self.rng.chance(self.p.email_case_rate) {
            email = if self.rng.chance(0.5) {
                email.to_uppercase()
            } else {
                capitalize_parts(&email)
            };
        }
        self.put_or_missing("email", email);
    }

    fn address(&mut self, a: &Address, han: bool) {
        let mut street = a.street_line(han);
        if street.contains("traße") && self.rng.chance(self.p.street_abbreviation_rate) {
            street = abbreviate_street(&street);
        }
        let street = self.damaged(street);
        self.put("street", street);
        let city = self.damaged(a.city_name(han).to_string());
        self.put("city", city);
        self.put_or_missing("postal_code", a.postcode.clone());
        let country = if self.rng.chance(self.p.country_name_rate) {
            self.rng.pick(a.country.names).to_string()
        } else {
            a.country.code.to_string()
        };
        self.put("country", country);
    }

    fn person(&mut self, person: &Person, system: usize) {
        let han = system == OA && person.chinese && self.rng.chance(self.p.han_script_rate);
        let (mut given, mut family) = if han {
            let han_of = |n: &super::people::Name| n.han.unwrap_or(n.latin).to_string();
            (han_of(&person.given), han_of(&person.family))
        } else {
            let nicknames = nicknames_of(person.given.latin);
            let given = if !nicknames.is_empty() && self.rng.chance(self.p.nickname_rate) {
                self.rng.pick(nicknames).to_string()
            } else {
                person.given.latin.to_string()
            };
            (
                self.damaged(given),
                self.damaged(person.family.latin.to_string()),
            )
        };
        if !han && self.rng.chance(self.p.swapped_names_rate) {
            std::mem::swap(&mut given, &mut family);
        }
        if system != CRM {
            let full = if han {
                format!("{family}{given}")
            } else if person.chinese && self.rng.chance(0.5) {
                format!("{family} {given}")
            } else if system == ERP && self.rng.chance(0.2) {
                format!("{family}, {given}")
            } else {
                format!("{given} {family}")
            };
            self.put("full_name", full);
        }
        if system != ERP {
            self.put("given_name", given);
            self.put("family_name", family);
            self.birth_date(person.birth);
            if let Some(employer) = &person.employer {
                self.put("company", employer.clone());
            }
            self.put("job_title", person.job_title.to_string());
        }
        self.email(&person.emails[0], &person.emails[1]);
        self.phone("phone", &person.landline);
        self.phone("mobile", &person.mobile);
        self.address(&person.home, han && person.home.country.code == "CN");
        if system != CRM {
            self.put("lang", person.home.country.lang.to_string());
        }
        self.put("customer_type", "person".to_string());
    }

    fn birth_date(&mut self, (y, mut m, mut d): (i32, u8, u8)) {
        if d <= 12 && d != m && self.rng.chance(self.p.day_month_swap_rate) {
            std::mem::swap(&mut m, &mut d);
        }
        let written = if self.rng.chance(self.p.date_format_rate) {
            if self.rng.chance(0.5) {
                format!("{d:02}.{m:02}.{y}")
            } else {
                format!("{m:02}/{d:02}/{y}")
            }
        } else {
            format!("{y:04}-{m:02}-{d:02}")
        };
        self.put_or_missing("birth_date", written);
    }

    fn company(&mut self, company: &Company, system: usize) {
        let han = system == OA
            && company.address.country.code == "CN"
            && self.rng.chance(self.p.han_script_rate);
        let variant = self.rng.chance(self.p.company_name_variant_rate);
        let name = company.name_written(han, variant, self.rng);
        let name = self.damaged(name);
        self.put("company", name);
        let mailbox = |m: &str| format!("{m}@{}", company.domain);
        let other = self.rng.pick(&company.mailboxes[1..]);
        self.email(&mailbox(company.mailboxes[0]), &mailbox(other));
        self.phone("phone", &company.phone);
        self.address(&company.address, han);
        if system != OA {
            let variant = self.rng.chance(self.p.website_variant_rate);
            let website = company.website(variant, self.rng);
            self.put("website", website);
        }
        if system != CRM {
            self.put_or_missing("tax_id", company.tax_id.clone());
        }
        if system == ERP {
            self.put("lang", company.address.country.lang.to_string());
        }
        self.put("customer_type", "company".to_string());
    }

    /// One value no normalizer accepts, as typed into a free-text column.
    fn invalid_value(&mut self) {
        let (field, value) = match self.rng.below(3) {
            0 if self.fields.contains_key("birth_date") => ("birth_date", "1985-02-30"),
            1 => ("email", "keine Angabe"),
            _ => ("phone", "n/a"),
        };
        self.put(field, value.to_string());
    }
}

/// `thomas.mueller@gmx.de` → `Thomas.Mueller@gmx.de`.
fn capitalize_parts(email: &str) -> String {
    let (local, domain) = email.split_once('@').unwrap_or((email, ""));
    let parts: Vec<String> = local
        .split('.')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_uppercase().chain(chars).collect())
                .unwrap_or_default()
        })
        .collect();
    format!("{}@{domain}", parts.join("."))
}
