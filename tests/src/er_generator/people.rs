//! People: German-speaking, British and Chinese, living in households whose
//! members share family name, address and landline (the hardest realistic
//! negatives), with private and, when employed by one of the dataset's
//! companies, work e-mail addresses.

use super::companies::company;
use super::corrupt::slug;
use super::layout::{household_of, is_company};
use super::names::{CN_FAMILY, CN_GIVEN, FAMILY_DE, FAMILY_EN, GIVEN_DE, GIVEN_EN};
use super::phone::Phone;
use super::places::{country, Address};
use super::rng::{Rng, Stream};
use super::Profile;

/// A name in Latin script, and in Han script for Chinese names.
#[derive(Clone, Copy)]
pub struct Name {
    pub latin: &'static str,
    pub han: Option<&'static str>,
}

impl Name {
    fn latin(latin: &'static str) -> Name {
        Name { latin, han: None }
    }

    fn chinese(&(han, pinyin): &(&'static str, &'static str)) -> Name {
        Name {
            latin: pinyin,
            han: Some(han),
        }
    }
}

pub struct Person {
    pub given: Name,
    pub family: Name,
    pub chinese: bool,
    /// Year, month, day.
    pub birth: (i32, u8, u8),
    pub home: Address,
    pub landline: Phone,
    pub mobile: Phone,
    /// The address systems usually hold (work if employed, else private),
    /// then another one the person also uses.
    pub emails: [String; 2],
    pub employer: Option<String>,
    pub job_title: &'static str,
}

const PROVIDERS_DE: &[&str] = &[
    "gmx.de",
    "web.de",
    "gmail.com",
    "t-online.de",
    "outlook.com",
    "yahoo.de",
    "posteo.de",
];
const PROVIDERS_GB: &[&str] = &["gmail.com", "outlook.com", "btinternet.com", "yahoo.co.uk"];
const PROVIDERS_CN: &[&str] = &["qq.com", "163.com", "126.com", "sina.com"];

const TITLES_DE: &[&str] = &[
    "Einkäufer",
    "Leiterin Einkauf",
    "Geschäftsführer",
    "Buchhalterin",
    "Projektleiter",
    "Vertriebsleiter",
    "Office Manager",
    "IT-Leiter",
    "Sachbearbeiterin",
    "Ingenieur",
];
const TITLES_EN: &[&str] = &[
    "Buyer",
    "Purchasing Manager",
    "Managing Director",
    "Accountant",
    "Project Manager",
    "Sales Director",
    "Office Manager",
    "CFO",
    "Engineer",
    "Consultant",
];

/// Person `e` of the dataset.
pub fn person(p: &Profile, e: u64) -> Person {
    let h = household_of(p, e);
    // Household stream: its first draw is `layout::chinese_household`.
    let mut hr = Rng::keyed(p.seed, Stream::Household, h, 0);
    let chinese = hr.chance(p.chinese_share);
    let english = !chinese && hr.chance(0.1);
    let u = hr.unit();
    let home_country = country(match (chinese, english) {
        (true, _) if u < 0.6 => "CN",
        (false, true) if u < 0.6 => "GB",
        (false, false) if u < 0.08 => "AT",
        (false, false) if u < 0.15 => "CH",
        _ => "DE",
    });
    let family = if chinese {
        Name::chinese(&CN_FAMILY[hr.skewed(CN_FAMILY.len())])
    } else if english {
        Name::latin(FAMILY_EN[hr.skewed(FAMILY_EN.len())])
    } else {
        Name::latin(FAMILY_DE[hr.skewed(FAMILY_DE.len())])
    };
    let home = Address::random(home_country, &mut hr);
    let landline = Phone::landline(home_country, home.city, &mut hr);

    let mut r = Rng::keyed(p.seed, Stream::Person, e, 0);
    let given = if chinese {
        Name::chinese(&CN_GIVEN[r.skewed(CN_GIVEN.len())])
    } else if english {
        Name::latin(GIVEN_EN[r.skewed(GIVEN_EN.len())])
    } else {
        Name::latin(GIVEN_DE[r.skewed(GIVEN_DE.len())])
    };
    let birth = birth_date(&mut r);
    let mobile = Phone::mobile(home_country, &mut r);
    let (g, f) = (slug(given.latin), slug(family.latin));
    let local = match r.below(4) {
        0 => format!("{g}.{f}"),
        1 => format!("{}.{f}", &g[..1]),
        2 => format!("{g}{f}"),
        _ => format!("{f}.{g}"),
    };
    let private_email = match home_country.code {
        "CN" if r.chance(0.4) => format!("{}@qq.com", 10_000_000 + r.digits(9)),
        "CN" => format!("{local}{}@{}", r.below(10_000), r.pick(PROVIDERS_CN)),
        "GB" => format!("{local}{}@{}", r.below(10_000), r.pick(PROVIDERS_GB)),
        _ => format!("{local}{}@{}", r.below(10_000), r.pick(PROVIDERS_DE)),
    };
    let employer = (0..3)
        .map(|_| r.below(p.entities) as u64)
        .find(|&j| is_company(p, j))
        .filter(|_| r.chance(0.7))
        .map(|j| company(p, j));
    let emails = match &employer {
        Some(c) => [format!("{local}@{}", c.domain), private_email],
        None => {
            let (user, _) = private_email.split_once('@').expect("an address");
            let provider = if private_email.ends_with("@gmail.com") {
                "outlook.com"
            } else {
                "gmail.com"
            };
            let other = format!("{user}@{provider}");
            [private_email, other]
        }
    };
    let titles = if home_country.lang.starts_with("de") {
        TITLES_DE
    } else {
        TITLES_EN
    };
    Person {
        given,
        family,
        chinese,
        birth,
        home,
        landline,
        mobile,
        emails,
        employer: employer.map(|c| c.canonical_name()),
        job_title: titles[r.below(titles.len())],
    }
}

/// Adults and teenagers: born 1940 to 2008.
fn birth_date(rng: &mut Rng) -> (i32, u8, u8) {
    let first = time::Date::from_calendar_date(1940, time::Month::January, 1)
        .expect("a date")
        .to_julian_day();
    let last = time::Date::from_calendar_date(2008, time::Month::December, 31)
        .expect("a date")
        .to_julian_day();
    let day = first + rng.below((last - first + 1) as usize) as i32;
    let (y, m, d) = time::Date::from_julian_day(day)
        .expect("in range")
        .to_calendar_date();
    (y, m.into(), d)
}
