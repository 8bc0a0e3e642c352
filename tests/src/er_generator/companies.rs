//! Companies: a name made of a stem, a line of business and a legal form,
//! written by systems in full, abbreviated, without the legal form, with
//! umlauts spelled out or in capitals; Chinese companies in Han characters
//! in `oa` and in English elsewhere. Distinct companies often share a name
//! in different cities (hard negatives); their addresses, phones, tax ids
//! and websites differ.

use super::corrupt::{has_umlaut, slug, transliterate};
use super::phone::Phone;
use super::places::{country, Address, City, Country};
use super::rng::{Rng, Stream};
use super::Profile;

pub struct LegalForm {
    pub short: &'static str,
    pub long: &'static str,
}

const fn legal(short: &'static str, long: &'static str) -> LegalForm {
    LegalForm { short, long }
}

const LEGAL_DE: &[LegalForm] = &[
    legal("GmbH", "Gesellschaft mit beschränkter Haftung"),
    legal(
        "GmbH & Co. KG",
        "Gesellschaft mit beschränkter Haftung & Compagnie Kommanditgesellschaft",
    ),
    legal("AG", "Aktiengesellschaft"),
    legal("e.K.", "eingetragener Kaufmann"),
    legal(
        "UG (haftungsbeschränkt)",
        "Unternehmergesellschaft (haftungsbeschränkt)",
    ),
    legal("KG", "Kommanditgesellschaft"),
];
const LEGAL_CH: &[LegalForm] = &[
    legal("AG", "Aktiengesellschaft"),
    legal("GmbH", "Gesellschaft mit beschränkter Haftung"),
];
const LEGAL_GB: &[LegalForm] = &[
    legal("Ltd", "Limited"),
    legal("PLC", "Public Limited Company"),
];

const STEMS_DE: &[&str] = &[
    "Müller",
    "Schmidt",
    "Weber",
    "Becker",
    "Hoffmann",
    "Schäfer",
    "Koch",
    "Bauer",
    "Krüger",
    "Köhler",
    "Böhm",
    "Jäger",
    "Groß",
    "Weiß",
    "Schröder",
    "Nord",
    "Süd",
    "Rhein",
    "Alpen",
    "Hansa",
    "Atlas",
    "Delta",
    "Phoenix",
    "Vertex",
    "Nova",
    "Euro",
    "Sonnen",
    "Stern",
    "Adler",
    "Löwen",
    "Kronen",
    "Brücken",
    "Main",
    "Elbe",
    "Donau",
];
const INDUSTRIES_DE: &[&str] = &[
    "Maschinenbau",
    "Logistik",
    "Elektrotechnik",
    "Medizintechnik",
    "Metallbau",
    "Bau",
    "Handel",
    "Immobilien",
    "Verpackung",
    "Lebensmittel",
    "Kunststofftechnik",
    "Automation",
    "Consulting",
    "Software",
    "Systems",
    "Energie",
    "Druck",
    "Holzbau",
    "Textil",
    "Fahrzeugtechnik",
];
const STEMS_EN: &[&str] = &[
    "International Business",
    "Atlas",
    "United",
    "Pacific",
    "Smith",
    "Taylor",
    "Wright",
    "Northern",
    "Crown",
    "Royal",
    "Phoenix",
    "Summit",
    "Pioneer",
    "Sterling",
    "Apex",
    "Global",
    "Thames",
    "Albion",
];
const INDUSTRIES_EN: &[&str] = &[
    "Systems",
    "Solutions",
    "Technologies",
    "Trading",
    "Logistics",
    "Engineering",
    "Consulting",
    "Holdings",
    "Software",
    "Foods",
    "Industries",
    "Services",
];
#[rustfmt::skip]
const CN_TRADE: &[(&str, &str)] = &[
    ("华信", "Huaxin"), ("东方", "Dongfang"), ("长城", "Changcheng"), ("中科", "Zhongke"),
    ("天成", "Tiancheng"), ("金桥", "Jinqiao"), ("恒通", "Hengtong"), ("宏达", "Hongda"),
    ("新星", "Xinxing"), ("瑞丰", "Ruifeng"), ("泰和", "Taihe"), ("永信", "Yongxin"),
    ("华美", "Huamei"), ("远航", "Yuanhang"), ("盛世", "Shengshi"), ("鼎盛", "Dingsheng"),
];
#[rustfmt::skip]
const CN_INDUSTRY: &[(&str, &str)] = &[
    ("科技", "Technology"), ("贸易", "Trading"), ("电子", "Electronics"), ("机械", "Machinery"),
    ("物流", "Logistics"), ("软件", "Software"), ("实业", "Industrial"),
    ("信息技术", "Information Technology"), ("医疗器械", "Medical Devices"),
    ("新能源", "New Energy"),
];

/// Words that systems abbreviate, with their abbreviation.
const ABBREVIATIONS: &[(&str, &str)] = &[
    ("International", "Intl"),
    ("Systems", "Sys."),
    ("Technologies", "Tech"),
    ("Solutions", "Sol."),
    ("Engineering", "Eng."),
    ("Holdings", "Hldgs"),
    ("Trading", "Trdg."),
    ("Elektrotechnik", "E-Technik"),
    ("Maschinenbau", "Masch.-Bau"),
    ("Consulting", "Cons."),
    ("Medizintechnik", "Medizintech."),
];

pub enum CompanyName {
    Western {
        stem: &'static str,
        industry: &'static str,
        legal: &'static LegalForm,
    },
    Chinese {
        city: &'static City,
        trade: (&'static str, &'static str),
        industry: (&'static str, &'static str),
    },
}

pub struct Company {
    pub name: CompanyName,
    pub address: Address,
    pub phone: Phone,
    /// Registered domain; unique per company.
    pub domain: String,
    /// Mailbox names (`info`, `kontakt`, ...), the usual one first.
    pub mailboxes: &'static [&'static str],
    pub tax_id: String,
}

/// The company's country: the first draw of its stream, so that `layout`
/// can ask whether it is Chinese without building it.
fn country_of(rng: &mut Rng) -> &'static Country {
    let u = rng.unit();
    country(match u {
        _ if u < 0.08 => "CN",
        _ if u < 0.13 => "AT",
        _ if u < 0.18 => "CH",
        _ if u < 0.25 => "GB",
        _ => "DE",
    })
}

pub fn is_chinese(p: &Profile, e: u64) -> bool {
    country_of(&mut Rng::keyed(p.seed, Stream::Company, e, 0)).code == "CN"
}

/// Company `e` of the dataset.
pub fn company(p: &Profile, e: u64) -> Company {
    let mut rng = Rng::keyed(p.seed, Stream::Company, e, 0);
    let country = country_of(&mut rng);
    let address = Address::random(country, &mut rng);
    let code = base36(rng.next_u64(), 3);
    let (name, domain, mailboxes, tax_id) = match country.code {
        "CN" => {
            let trade = *rng.pick(CN_TRADE);
            let industry = *rng.pick(CN_INDUSTRY);
            let domain = format!("{}{}{code}.com.cn", slug(trade.1), slug(industry.1));
            let tax_id = format!(
                "91{:06}{:09}{}",
                rng.digits(6),
                rng.digits(9),
                base36(rng.next_u64(), 1).to_ascii_uppercase()
            );
            let name = CompanyName::Chinese {
                city: address.city,
                trade,
                industry,
            };
            (
                name,
                domain,
                &["info", "sales", "service", "contact"][..],
                tax_id,
            )
        }
        "GB" => {
            let stem = STEMS_EN[rng.skewed(STEMS_EN.len())];
            let industry = *rng.pick(INDUSTRIES_EN);
            let domain = format!("{}-{}-{code}.co.uk", slug(stem), slug(industry));
            let name = CompanyName::Western {
                stem,
                industry,
                legal: &LEGAL_GB[rng.skewed(LEGAL_GB.len())],
            };
            let tax_id = format!("GB{:09}", rng.digits(9));
            (
                name,
                domain,
                &["info", "contact", "sales", "accounts", "office"][..],
                tax_id,
            )
        }
        code_de => {
            let stem = STEMS_DE[rng.skewed(STEMS_DE.len())];
            let industry = *rng.pick(INDUSTRIES_DE);
            let tld = code_de.to_ascii_lowercase();
            let domain = format!("{}-{}-{code}.{tld}", slug(stem), slug(industry));
            let forms = if code_de == "CH" { LEGAL_CH } else { LEGAL_DE };
            let name = CompanyName::Western {
                stem,
                industry,
                legal: &forms[rng.skewed(forms.len())],
            };
            let tax_id = match code_de {
                "AT" => format!("ATU{:08}", rng.digits(8)),
                "CH" => {
                    let n = rng.digits(9);
                    format!(
                        "CHE-{:03}.{:03}.{:03} MWST",
                        n / 1_000_000,
                        n / 1000 % 1000,
                        n % 1000
                    )
                }
                _ => format!("DE{:09}", rng.digits(9)),
            };
            (
                name,
                domain,
                &[
                    "info",
                    "kontakt",
                    "office",
                    "vertrieb",
                    "einkauf",
                    "buchhaltung",
                ][..],
                tax_id,
            )
        }
    };
    let phone = Phone::landline(country, address.city, &mut rng);
    Company {
        name,
        address,
        phone,
        domain,
        mailboxes,
        tax_id,
    }
}

fn base36(mut n: u64, len: usize) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    (0..len)
        .map(|_| {
            let c = DIGITS[(n % 36) as usize] as char;
            n /= 36;
            c
        })
        .collect()
}

impl Company {
    /// The name as registered (in English for Chinese companies).
    pub fn canonical_name(&self) -> String {
        match &self.name {
            CompanyName::Western {
                stem,
                industry,
                legal,
            } => format!("{stem} {industry} {}", legal.short),
            CompanyName::Chinese {
                city,
                trade,
                industry,
            } => format!("{} {} {} Co., Ltd.", city.name, trade.1, industry.1),
        }
    }

    /// The name as one system writes it: in Han characters when `han`
    /// (Chinese companies only), else canonical or, when `variant`, one of
    /// the usual variations.
    pub fn name_written(&self, han: bool, variant: bool, rng: &mut Rng) -> String {
        match &self.name {
            CompanyName::Chinese {
                city,
                trade,
                industry,
            } => {
                if han {
                    return format!(
                        "{}{}{}有限公司",
                        city.han.unwrap_or(""),
                        trade.0,
                        industry.0
                    );
                }
                if !variant {
                    return self.canonical_name();
                }
                match rng.below(5) {
                    0 => format!("{} {} Co., Ltd.", trade.1, industry.1),
                    1 => format!("{} {} {} Co. Ltd", city.name, trade.1, industry.1),
                    2 => format!("{} {} {} Company Limited", city.name, trade.1, industry.1),
                    3 => format!("{} {}", trade.1, industry.1),
                    _ => self.canonical_name().to_uppercase(),
                }
            }
            CompanyName::Western {
                stem,
                industry,
                legal,
            } => {
                let base = format!("{stem} {industry}");
                if !variant {
                    return format!("{base} {}", legal.short);
                }
                match rng.below(5) {
                    0 => base,
                    1 => format!("{base} {}", legal.long),
                    2 if has_umlaut(&base) => transliterate(&base, false),
                    3 if ABBREVIATIONS.iter().any(|(w, _)| base.contains(w)) => {
                        let mut short = base;
                        for (word, abbreviation) in ABBREVIATIONS {
                            short = short.replace(word, abbreviation);
                        }
                        if rng.chance(0.5) {
                            short
                        } else {
                            format!("{short} {}", legal.short)
                        }
                    }
                    4 => format!("{base} {}", legal.short).to_uppercase(),
                    _ => format!("{base} {}", legal.long),
                }
            }
        }
    }

    /// The website, canonically `https://www.<domain>`.
    pub fn website(&self, variant: bool, rng: &mut Rng) -> String {
        let d = &self.domain;
        if !variant {
            return format!("https://www.{d}");
        }
        match rng.below(5) {
            0 => format!("www.{d}"),
            1 => d.clone(),
            2 => format!("http://{d}"),
            3 => format!("https://{d}/"),
            _ => format!("http://www.{d}/"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_vary_but_stay_recognizable() {
        let p = Profile::default_profile(1000);
        let mut rng = Rng::keyed(3, Stream::Record, 0, 0);
        let mut seen_long = false;
        for e in 0..1000 {
            let c = company(&p, e);
            let name = c.name_written(false, true, &mut rng);
            seen_long |= name.contains("Gesellschaft mit beschränkter Haftung");
            assert!(!name.is_empty());
            assert!(c.website(true, &mut rng).contains(&c.domain));
        }
        assert!(seen_long);
    }
}
