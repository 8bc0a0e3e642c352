//! Han characters to toneless pinyin, so that 王伟 can be compared with
//! "Wang Wei".

use ::pinyin::ToPinyin;

/// Two-character surnames, with the reading they take as a surname. Names
/// are split after these instead of after the first character.
const COMPOUND_SURNAMES: &[(&str, &str)] = &[
    ("欧阳", "ouyang"),
    ("歐陽", "ouyang"),
    ("司马", "sima"),
    ("司馬", "sima"),
    ("上官", "shangguan"),
    ("诸葛", "zhuge"),
    ("諸葛", "zhuge"),
    ("东方", "dongfang"),
    ("東方", "dongfang"),
    ("皇甫", "huangfu"),
    ("尉迟", "yuchi"),
    ("尉遲", "yuchi"),
    ("公孙", "gongsun"),
    ("公孫", "gongsun"),
    ("慕容", "murong"),
    ("夏侯", "xiahou"),
    ("令狐", "linghu"),
    ("长孙", "zhangsun"),
    ("長孫", "zhangsun"),
    ("宇文", "yuwen"),
    ("司徒", "situ"),
    ("西门", "ximen"),
    ("西門", "ximen"),
    ("独孤", "dugu"),
    ("獨孤", "dugu"),
    ("南宫", "nangong"),
    ("南宮", "nangong"),
    ("端木", "duanmu"),
    ("轩辕", "xuanyuan"),
    ("軒轅", "xuanyuan"),
    ("呼延", "huyan"),
    ("申屠", "shentu"),
    ("澹台", "tantai"),
    ("公冶", "gongye"),
    ("太史", "taishi"),
    ("闻人", "wenren"),
    ("聞人", "wenren"),
    ("赫连", "helian"),
    ("赫連", "helian"),
    ("万俟", "moqi"),
    ("萬俟", "moqi"),
    ("钟离", "zhongli"),
    ("鍾離", "zhongli"),
];

/// Whether `c` is a Han (CJK ideograph) character.
pub(super) fn is_han(c: char) -> bool {
    matches!(c,
        '\u{4E00}'..='\u{9FFF}'
        | '\u{3400}'..='\u{4DBF}'
        | '\u{F900}'..='\u{FAFF}'
        | '\u{20000}'..='\u{2A6DF}'
        | '\u{2A700}'..='\u{2EBEF}'
        | '\u{30000}'..='\u{3134F}')
}

pub(super) fn contains_han(s: &str) -> bool {
    s.chars().any(is_han)
}

/// Toneless pinyin of `s`: one lower-case syllable per Han character,
/// separated by single spaces ("张小明" → "zhang xiao ming"; ü stays ü, as
/// in "lü"). Other letters and digits pass through lower-cased as words of
/// their own; punctuation separates. `None` when `s` has no Han character
/// with a known reading. Polyphonic characters take their most common
/// reading; names should go through the surname-aware helpers instead.
pub fn han_to_pinyin(s: &str) -> Option<String> {
    // Most names are ASCII, which holds no Han character: skip the
    // per-character table lookups (they showed in the ingest profile).
    if s.is_ascii() {
        return None;
    }
    let mut out = String::with_capacity(s.len() * 2);
    let mut any_han = false;
    let mut gap = false;
    for (c, reading) in s.chars().zip(s.to_pinyin()) {
        if let Some(p) = reading {
            any_han = true;
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(p.plain());
            gap = true;
        } else if c.is_alphanumeric() {
            if gap && !out.is_empty() {
                out.push(' ');
            }
            gap = false;
            out.extend(c.to_lowercase());
        } else {
            gap = true;
        }
    }
    any_han.then_some(out)
}

/// Splits a Han full name, written surname first, into surname and given
/// name: after a known compound surname, else after the first character.
pub(super) fn split_han_name(name: &str) -> (&str, &str) {
    for &(surname, _) in COMPOUND_SURNAMES {
        if let Some(given) = name.strip_prefix(surname) {
            return (surname, given);
        }
    }
    match name.char_indices().nth(1) {
        Some((i, _)) => name.split_at(i),
        None => (name, ""),
    }
}

/// Pinyin of a Han surname, syllables joined as passports write them
/// ("ouyang"), with the surname reading of characters that read differently
/// elsewhere (单 is "shan" as a surname, "dan" otherwise).
pub(super) fn surname_pinyin(surname: &str) -> String {
    if let Some(&(_, reading)) = COMPOUND_SURNAMES.iter().find(|(s, _)| *s == surname) {
        return reading.to_owned();
    }
    let mut chars = surname.chars();
    match (chars.next().and_then(surname_reading), chars.as_str()) {
        (Some(first), rest) => {
            let mut out = first.to_owned();
            out.push_str(&given_pinyin(rest));
            out
        }
        (None, _) => given_pinyin(surname),
    }
}

/// Pinyin of a Han given name, syllables joined as it is written in Latin
/// script ("小明" → "xiaoming"); non-Han letters pass through lower-cased.
pub(super) fn given_pinyin(given: &str) -> String {
    let mut out = String::with_capacity(given.len() * 2);
    for (c, reading) in given.chars().zip(given.to_pinyin()) {
        match reading {
            Some(p) => out.push_str(p.plain()),
            None if c.is_alphanumeric() => out.extend(c.to_lowercase()),
            None => {}
        }
    }
    out
}

/// Surname readings of common polyphonic surname characters.
fn surname_reading(c: char) -> Option<&'static str> {
    Some(match c {
        '单' | '單' => "shan",
        '曾' => "zeng",
        '解' => "xie",
        '区' | '區' => "ou",
        '仇' => "qiu",
        '朴' => "piao",
        '查' => "zha",
        '翟' => "zhai",
        '盖' | '蓋' => "ge",
        '乐' | '樂' => "yue",
        '缪' | '繆' => "miao",
        '覃' => "qin",
        '重' => "chong",
        '秘' => "bi",
        '召' => "shao",
        '折' => "she",
        '藏' => "zang",
        '长' | '長' => "chang",
        '种' | '種' => "chong",
        '员' | '員' => "yun",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn han_to_pinyin_cases() {
        let cases: &[(&str, Option<&str>)] = &[
            ("王伟", Some("wang wei")),
            ("张小明", Some("zhang xiao ming")),
            ("吕", Some("lü")),
            ("北京ABC公司", Some("bei jing abc gong si")),
            ("Wang Wei", None),
            ("", None),
        ];
        for &(input, want) in cases {
            assert_eq!(han_to_pinyin(input).as_deref(), want, "{input}");
        }
    }

    #[test]
    fn split_names() {
        let cases: &[(&str, &str, &str)] = &[
            ("王伟", "王", "伟"),
            ("张小明", "张", "小明"),
            ("欧阳修", "欧阳", "修"),
            ("司马", "司马", ""),
            ("王", "王", ""),
        ];
        for &(name, surname, given) in cases {
            assert_eq!(split_han_name(name), (surname, given), "{name}");
        }
    }

    #[test]
    fn surname_readings() {
        let cases: &[(&str, &str)] = &[
            ("王", "wang"),
            ("单", "shan"),
            ("曾", "zeng"),
            ("欧阳", "ouyang"),
            ("長孫", "zhangsun"),
            ("长", "chang"),
        ];
        for &(surname, want) in cases {
            assert_eq!(surname_pinyin(surname), want, "{surname}");
        }
        assert_eq!(given_pinyin("小明"), "xiaoming");
    }

    #[test]
    fn han_detection() {
        assert!(contains_han("Wang 伟"));
        assert!(!contains_han("Müller"));
        assert!(!contains_han("やまだ"));
    }
}
