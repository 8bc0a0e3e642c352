//! Countries with their cities, streets, postcode shapes and phone numbering,
//! so that every address and number fits its country (a Berlin postcode
//! starts with 10, its landline with 030).

use super::rng::Rng;

pub struct Country {
    /// ISO 3166-1 alpha-2.
    pub code: &'static str,
    /// How people write the country instead of the code.
    pub names: &'static [&'static str],
    pub calling_code: &'static str,
    pub lang: &'static str,
    /// Most populous first.
    pub cities: &'static [City],
    pub streets: &'static [Street],
    pub postcode: Postcode,
    /// Digits of a landline number after the trunk `0` (area code included).
    pub landline_len: usize,
    pub mobile_prefixes: &'static [&'static str],
    /// Digits of a mobile number after the trunk prefix (prefix included).
    pub mobile_len: usize,
    /// Whether national mobile numbers are dialled with a leading `0`
    /// (China's are not).
    pub mobile_trunk: bool,
}

pub struct City {
    pub name: &'static str,
    /// The name in Han characters, for Chinese cities.
    pub han: Option<&'static str>,
    /// Leading postcode characters (the British outward code's letters).
    pub postcode: &'static str,
    pub area_code: &'static str,
}

pub struct Street {
    pub name: &'static str,
    pub han: Option<&'static str>,
}

pub enum Postcode {
    /// This many digits, starting with the city's prefix.
    Digits(usize),
    /// Outward code (city letters and a district number), space, inward code.
    British,
}

const fn city(name: &'static str, postcode: &'static str, area_code: &'static str) -> City {
    City {
        name,
        han: None,
        postcode,
        area_code,
    }
}

const fn cn_city(
    han: &'static str,
    name: &'static str,
    postcode: &'static str,
    area_code: &'static str,
) -> City {
    City {
        name,
        han: Some(han),
        postcode,
        area_code,
    }
}

const fn street(name: &'static str) -> Street {
    Street { name, han: None }
}

const fn cn_street(han: &'static str, name: &'static str) -> Street {
    Street {
        name,
        han: Some(han),
    }
}

const GERMAN_STREETS: &[Street] = &[
    street("Hauptstraße"),
    street("Bahnhofstraße"),
    street("Gartenstraße"),
    street("Schulstraße"),
    street("Dorfstraße"),
    street("Bergstraße"),
    street("Lindenstraße"),
    street("Kirchstraße"),
    street("Waldstraße"),
    street("Ringstraße"),
    street("Friedrichstraße"),
    street("Goethestraße"),
    street("Schillerstraße"),
    street("Mozartstraße"),
    street("Am Markt"),
    street("Marktplatz"),
    street("Rosenweg"),
    street("Birkenweg"),
    street("Industriestraße"),
    street("Kaiserstraße"),
    street("Wilhelmstraße"),
    street("Mühlenweg"),
    street("Feldstraße"),
    street("Parkstraße"),
    street("Sonnenstraße"),
    street("Lessingstraße"),
    street("Poststraße"),
    street("Talstraße"),
    street("Bismarckstraße"),
    street("Uhlandstraße"),
    street("Große Straße"),
    street("Königsallee"),
];

pub const COUNTRIES: &[Country] = &[
    Country {
        code: "DE",
        names: &["Germany", "Deutschland"],
        calling_code: "49",
        lang: "de_DE",
        cities: &[
            city("Berlin", "10", "30"),
            city("Hamburg", "20", "40"),
            city("München", "80", "89"),
            city("Köln", "50", "221"),
            city("Frankfurt am Main", "60", "69"),
            city("Stuttgart", "70", "711"),
            city("Düsseldorf", "40", "211"),
            city("Leipzig", "04", "341"),
            city("Dortmund", "44", "231"),
            city("Essen", "45", "201"),
            city("Bremen", "28", "421"),
            city("Dresden", "01", "351"),
            city("Hannover", "30", "511"),
            city("Nürnberg", "90", "911"),
            city("Duisburg", "47", "203"),
            city("Bochum", "44", "234"),
            city("Wuppertal", "42", "202"),
            city("Bielefeld", "33", "521"),
            city("Bonn", "53", "228"),
            city("Münster", "48", "251"),
            city("Mannheim", "68", "621"),
            city("Karlsruhe", "76", "721"),
            city("Augsburg", "86", "821"),
            city("Wiesbaden", "65", "611"),
            city("Freiburg im Breisgau", "79", "761"),
            city("Regensburg", "93", "941"),
            city("Würzburg", "97", "931"),
            city("Göttingen", "37", "551"),
            city("Osnabrück", "49", "541"),
            city("Mainz", "55", "6131"),
            city("Lübeck", "23", "451"),
            city("Kiel", "24", "431"),
            city("Rostock", "18", "381"),
            city("Erfurt", "99", "361"),
            city("Magdeburg", "39", "391"),
            city("Saarbrücken", "66", "681"),
            city("Heidelberg", "69", "6221"),
            city("Ulm", "89", "731"),
            city("Kassel", "34", "561"),
            city("Aachen", "52", "241"),
        ],
        streets: GERMAN_STREETS,
        postcode: Postcode::Digits(5),
        landline_len: 10,
        mobile_prefixes: &[
            "151", "152", "157", "160", "162", "170", "171", "172", "175", "176", "177", "179",
        ],
        mobile_len: 11,
        mobile_trunk: true,
    },
    Country {
        code: "AT",
        names: &["Austria", "Österreich"],
        calling_code: "43",
        lang: "de_AT",
        cities: &[
            city("Wien", "1", "1"),
            city("Graz", "80", "316"),
            city("Linz", "40", "732"),
            city("Salzburg", "50", "662"),
            city("Innsbruck", "60", "512"),
            city("Klagenfurt", "90", "463"),
        ],
        streets: GERMAN_STREETS,
        postcode: Postcode::Digits(4),
        landline_len: 10,
        mobile_prefixes: &["650", "660", "664", "676", "680", "699"],
        mobile_len: 10,
        mobile_trunk: true,
    },
    Country {
        code: "CH",
        names: &["Switzerland", "Schweiz", "Suisse"],
        calling_code: "41",
        lang: "de_CH",
        cities: &[
            city("Zürich", "80", "44"),
            city("Genève", "12", "22"),
            city("Basel", "40", "61"),
            city("Bern", "30", "31"),
            city("Lausanne", "10", "21"),
            city("Luzern", "60", "41"),
            city("St. Gallen", "90", "71"),
        ],
        streets: GERMAN_STREETS,
        postcode: Postcode::Digits(4),
        landline_len: 9,
        mobile_prefixes: &["76", "77", "78", "79"],
        mobile_len: 9,
        mobile_trunk: true,
    },
    Country {
        code: "GB",
        names: &["United Kingdom", "UK", "Great Britain"],
        calling_code: "44",
        lang: "en_GB",
        cities: &[
            city("London", "SW", "20"),
            city("Manchester", "M", "161"),
            city("Birmingham", "B", "121"),
            city("Leeds", "LS", "113"),
            city("Glasgow", "G", "141"),
            city("Bristol", "BS", "117"),
            city("Liverpool", "L", "151"),
            city("Edinburgh", "EH", "131"),
        ],
        streets: &[
            street("High Street"),
            street("Station Road"),
            street("Church Lane"),
            street("Victoria Road"),
            street("Park Avenue"),
            street("Mill Lane"),
            street("King Street"),
            street("Queen's Road"),
            street("Green Lane"),
            street("Manor Road"),
        ],
        postcode: Postcode::British,
        landline_len: 10,
        mobile_prefixes: &["7400", "7500", "7700", "7800", "7900"],
        mobile_len: 10,
        mobile_trunk: true,
    },
    Country {
        code: "CN",
        names: &["China", "中国"],
        calling_code: "86",
        lang: "zh_CN",
        cities: &[
            cn_city("上海", "Shanghai", "20", "21"),
            cn_city("北京", "Beijing", "10", "10"),
            cn_city("广州", "Guangzhou", "51", "20"),
            cn_city("深圳", "Shenzhen", "518", "755"),
            cn_city("重庆", "Chongqing", "40", "23"),
            cn_city("天津", "Tianjin", "30", "22"),
            cn_city("成都", "Chengdu", "61", "28"),
            cn_city("杭州", "Hangzhou", "31", "571"),
            cn_city("武汉", "Wuhan", "43", "27"),
            cn_city("南京", "Nanjing", "21", "25"),
            cn_city("西安", "Xi'an", "71", "29"),
            cn_city("苏州", "Suzhou", "215", "512"),
        ],
        streets: &[
            cn_street("人民路", "Renmin Road"),
            cn_street("中山路", "Zhongshan Road"),
            cn_street("建国路", "Jianguo Road"),
            cn_street("解放路", "Jiefang Road"),
            cn_street("长安街", "Chang'an Street"),
            cn_street("南京路", "Nanjing Road"),
            cn_street("淮海路", "Huaihai Road"),
            cn_street("和平路", "Heping Road"),
            cn_street("新华路", "Xinhua Road"),
            cn_street("胜利路", "Shengli Road"),
            cn_street("文化路", "Wenhua Road"),
            cn_street("滨江大道", "Binjiang Avenue"),
        ],
        postcode: Postcode::Digits(6),
        landline_len: 10,
        mobile_prefixes: &[
            "130", "131", "132", "135", "136", "137", "138", "139", "150", "151", "158", "159",
            "180", "186", "187", "188", "189",
        ],
        mobile_len: 11,
        mobile_trunk: false,
    },
];

pub fn country(code: &str) -> &'static Country {
    COUNTRIES
        .iter()
        .find(|c| c.code == code)
        .expect("a country of the table")
}

/// Letters British inward codes use.
const INWARD_LETTERS: &[u8] = b"ABDEFGHJLNPQRSTUWXYZ";

/// A postcode of `city` in `country` from the random number `r`.
pub fn postcode(country: &Country, city: &City, r: u64) -> String {
    match country.postcode {
        Postcode::Digits(n) => {
            let free = n - city.postcode.len();
            format!(
                "{}{:0free$}",
                city.postcode,
                r % 10u64.pow(free as u32),
                free = free
            )
        }
        Postcode::British => {
            let letter =
                |k: u64| INWARD_LETTERS[(k % INWARD_LETTERS.len() as u64) as usize] as char;
            format!(
                "{}{} {}{}{}",
                city.postcode,
                1 + r % 20,
                (r / 20) % 10,
                letter(r / 200),
                letter(r / 4000)
            )
        }
    }
}

pub struct Address {
    pub country: &'static Country,
    pub city: &'static City,
    pub street: &'static Street,
    /// House number with an occasional letter (`12a`).
    pub number: String,
    pub postcode: String,
}

impl Address {
    pub fn random(country: &'static Country, rng: &mut Rng) -> Address {
        let city = &country.cities[rng.skewed(country.cities.len())];
        let street = rng.pick(country.streets);
        let mut number = (1 + rng.skewed(180)).to_string();
        if rng.chance(0.08) {
            number.push(*rng.pick(&['a', 'b', 'c']));
        }
        Address {
            country,
            city,
            street,
            number,
            postcode: postcode(country, city, rng.next_u64()),
        }
    }

    /// Street and number the way the country writes them, in Han script
    /// when asked and the street has a Han name.
    pub fn street_line(&self, han: bool) -> String {
        match (self.street.han, han) {
            (Some(h), true) => format!("{h}{}号", self.number),
            _ if matches!(self.country.code, "GB" | "CN") => {
                format!("{} {}", self.number, self.street.name)
            }
            _ => format!("{} {}", self.street.name, self.number),
        }
    }

    pub fn city_name(&self, han: bool) -> &'static str {
        match (self.city.han, han) {
            (Some(h), true) => h,
            _ => self.city.name,
        }
    }
}
