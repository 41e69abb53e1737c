//! Check-character algorithms: unified social credit codes (GB 32100-2015),
//! resident identity numbers (GB 11643-1999) and the Luhn check of bank card numbers.

/// Characters of a USCC in value order (no I, O, S, V, Z).
const USCC_CHARSET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
const USCC_WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];
const ORG_WEIGHTS: [u32; 8] = [3, 7, 9, 10, 5, 8, 4, 2];

fn uscc_value(c: u8) -> Option<u32> {
    USCC_CHARSET.iter().position(|&x| x == c).map(|p| p as u32)
}

/// Why a USCC is not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsccError {
    /// Not 18 characters.
    Length(usize),
    /// A character outside `0-9A-Z` minus I, O, S, V, Z, at this 1-based position.
    Character(usize),
    /// The organisation code check (position 17) is wrong; the right one is given.
    OrganisationCheck(char),
    /// The final check character (position 18) is wrong; the right one is given.
    Check(char),
}

impl std::fmt::Display for UsccError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UsccError::Length(n) => write!(f, "has {n} characters, expected 18"),
            UsccError::Character(p) => write!(
                f,
                "character {p} is not one of 0-9 and A-Z without I, O, S, V, Z"
            ),
            UsccError::OrganisationCheck(c) => write!(
                f,
                "organisation code check character (position 17) is wrong, expected '{c}'"
            ),
            UsccError::Check(c) => {
                write!(f, "check character (position 18) is wrong, expected '{c}'")
            }
        }
    }
}

/// Validate a unified social credit code, including the embedded organisation code check.
pub fn check_uscc(code: &str) -> Result<(), UsccError> {
    let bytes = code.as_bytes();
    if bytes.len() != 18 {
        return Err(UsccError::Length(code.chars().count()));
    }
    let mut values = [0u32; 18];
    for (i, &b) in bytes.iter().enumerate() {
        values[i] = uscc_value(b).ok_or(UsccError::Character(i + 1))?;
    }
    // Organisation code: positions 9..=17, digits and letters valued 10 + (A=10 ... per GB 11714);
    // letters of the USCC charset map to their charset value, which for A-Z matches GB 11714
    // except for the skipped letters, which cannot occur here.
    let org_sum: u32 = values[8..16]
        .iter()
        .zip(ORG_WEIGHTS)
        .map(|(v, w)| gb11714_value(*v, bytes) * w)
        .sum();
    let org_check = match 11 - (org_sum % 11) {
        10 => b'X',
        11 => b'0',
        n => b'0' + n as u8,
    };
    if bytes[16] != org_check {
        return Err(UsccError::OrganisationCheck(char::from(org_check)));
    }
    let sum: u32 = values[..17]
        .iter()
        .zip(USCC_WEIGHTS)
        .map(|(v, w)| v * w)
        .sum();
    let check = (31 - sum % 31) % 31;
    let expected = USCC_CHARSET[check as usize];
    if bytes[17] != expected {
        return Err(UsccError::Check(char::from(expected)));
    }
    Ok(())
}

/// GB 11714 values letters A..Z as 10..35 (A=10, B=11, ...), unlike the USCC charset which
/// skips I, O, S, V, Z. Map a USCC charset value back to the GB 11714 value.
fn gb11714_value(uscc_value: u32, _code: &[u8]) -> u32 {
    let c = USCC_CHARSET[uscc_value as usize];
    if c.is_ascii_digit() {
        u32::from(c - b'0')
    } else {
        u32::from(c - b'A') + 10
    }
}

/// The check character that completes the first 17 characters of a USCC, if they are valid
/// characters.
pub fn uscc_check_char(first17: &str) -> Option<char> {
    let bytes = first17.as_bytes();
    if bytes.len() != 17 {
        return None;
    }
    let mut sum = 0;
    for (b, w) in bytes.iter().zip(USCC_WEIGHTS) {
        sum += uscc_value(*b)? * w;
    }
    Some(char::from(USCC_CHARSET[((31 - sum % 31) % 31) as usize]))
}

/// Complete the first 16 characters of a USCC (registration authority, entity type, region
/// code and the 8-character organisation code body) with the organisation code check
/// (position 17) and the final check character (position 18). `None` when a character is
/// outside the USCC charset.
pub fn uscc_complete(first16: &str) -> Option<String> {
    let bytes = first16.as_bytes();
    if bytes.len() != 16 {
        return None;
    }
    let mut org_sum = 0;
    for (b, w) in bytes[8..].iter().zip(ORG_WEIGHTS) {
        org_sum += gb11714_value(uscc_value(*b)?, bytes) * w;
    }
    let org_check = match 11 - (org_sum % 11) {
        10 => 'X',
        11 => '0',
        n => char::from(b'0' + n as u8),
    };
    let first17 = format!("{first16}{org_check}");
    let check = uscc_check_char(&first17)?;
    Some(format!("{first17}{check}"))
}

const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const ID_CHECK: &[u8; 11] = b"10X98765432";

/// Whether 18 bytes are a resident identity number whose check character (GB 11643-1999) is
/// right. Accepts `x` and `X`. Does not look at the date or region; see [`resident_id_plausible`].
pub fn resident_id_check(id: &[u8]) -> bool {
    if id.len() != 18 {
        return false;
    }
    let mut sum = 0u32;
    for (b, w) in id[..17].iter().zip(ID_WEIGHTS) {
        if !b.is_ascii_digit() {
            return false;
        }
        sum += u32::from(b - b'0') * w;
    }
    let expected = ID_CHECK[(sum % 11) as usize];
    id[17].to_ascii_uppercase() == expected
}

/// Check character plus a real birth date (1900-01-01 ..= 2099-12-31) and a plausible province
/// code (11..=82).
pub fn resident_id_plausible(id: &[u8]) -> bool {
    if !resident_id_check(id) {
        return false;
    }
    let num = |r: std::ops::Range<usize>| -> u32 {
        id[r].iter().fold(0, |a, b| a * 10 + u32::from(b - b'0'))
    };
    let province = num(0..2);
    if !(11..=82).contains(&province) {
        return false;
    }
    let year = num(6..10) as i32;
    let month = num(10..12) as u8;
    let day = num(12..14) as u8;
    (1900..=2099).contains(&year) && crate::time::Date::new(year, month, day).is_some()
}

/// Luhn check over ASCII digits.
pub fn luhn_valid(digits: &[u8]) -> bool {
    if digits.is_empty() {
        return false;
    }
    let mut sum = 0u32;
    for (i, b) in digits.iter().rev().enumerate() {
        if !b.is_ascii_digit() {
            return false;
        }
        let mut d = u32::from(b - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_md_examples() {
        assert_eq!(check_uscc("91350100M000100Y43"), Ok(()));
        assert_eq!(check_uscc("91350100M000100Y44"), Err(UsccError::Check('3')));
        assert!(resident_id_check(b"11010519491231002X"));
        assert!(resident_id_check(b"440524188001010014"));
        assert!(!resident_id_check(b"110105194912310021"));
        assert!(resident_id_plausible(b"11010519491231002X"));
        assert_eq!(
            uscc_complete("91350100M000100").map(|_| ()),
            None,
            "15 characters are refused"
        );
        assert_eq!(
            uscc_complete("91350100M000100Y").as_deref(),
            Some("91350100M000100Y43")
        );
        assert!(luhn_valid(b"4111111111111111"));
        assert!(luhn_valid(b"6222000000000000004"));
        assert!(!luhn_valid(b"4111111111111112"));
    }
}
