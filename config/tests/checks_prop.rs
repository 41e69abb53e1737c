//! Property tests: the check-character functions of `crossline_config::checks` agree with
//! reference implementations written here independently from the standards' own formulations.

use crossline_config::checks::{
    check_uscc, luhn_valid, resident_id_check, uscc_check_char, uscc_complete,
};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// USCC (GB 32100-2015), reference written from the spec text: the 31-character code set, the
// weights W_i = 3^(i-1) mod 31 computed (not copied), C18 = 31 - (sum mod 31) with 31 -> 0; the
// organisation code (positions 9-17, GB 11714) has weights 3 7 9 10 5 8 4 2, letters worth
// A=10 .. Z=35, C9 = 11 - (sum mod 11) with 10 -> 'X' and 11 -> '0'.
// ---------------------------------------------------------------------------------------------

const CODE_SET: &str = "0123456789ABCDEFGHJKLMNPQRTUWXY";

fn reference_uscc_valid(code: &str) -> bool {
    let chars: Vec<char> = code.chars().collect();
    if chars.len() != 18 {
        return false;
    }
    let Some(values) = chars
        .iter()
        .map(|c| CODE_SET.find(*c))
        .collect::<Option<Vec<usize>>>()
    else {
        return false;
    };
    // Organisation code check.
    let org_weights = [3, 7, 9, 10, 5, 8, 4, 2];
    let mut org_sum = 0;
    for (c, w) in chars[8..16].iter().zip(org_weights) {
        let v = c.to_digit(36).expect("alphanumeric") as usize; // 0-9, A=10 .. Z=35
        org_sum += v * w;
    }
    let org_check = match 11 - org_sum % 11 {
        10 => 'X',
        11 => '0',
        n => char::from_digit(n as u32, 10).expect("digit"),
    };
    if chars[16] != org_check {
        return false;
    }
    // Final check.
    let mut weight = 1;
    let mut sum = 0;
    for v in &values[..17] {
        sum += v * weight;
        weight = weight * 3 % 31;
    }
    let c18 = (31 - sum % 31) % 31;
    values[17] == c18
}

fn uscc_char() -> impl Strategy<Value = char> {
    prop::sample::select(CODE_SET.chars().collect::<Vec<_>>())
}

fn uscc_body() -> impl Strategy<Value = String> {
    prop::collection::vec(uscc_char(), 16).prop_map(|v| v.into_iter().collect())
}

// ---------------------------------------------------------------------------------------------
// Resident ID (GB 11643-1999), reference in the ISO 7064 MOD 11-2 formulation: over all 18
// positions (X = 10), sum of a_i * 2^(18-i) is congruent to 1 modulo 11.
// ---------------------------------------------------------------------------------------------

fn reference_resident_id(id: &[u8]) -> bool {
    if id.len() != 18 {
        return false;
    }
    let mut sum: u64 = 0;
    for (i, &b) in id.iter().enumerate() {
        let a = match b {
            b'0'..=b'9' => u64::from(b - b'0'),
            b'X' | b'x' if i == 17 => 10,
            _ => return false,
        };
        sum += a * (1u64 << (17 - i));
    }
    sum % 11 == 1
}

// Luhn, reference: sum the digits of every second digit doubled, counting from the right.
fn reference_luhn(digits: &[u8]) -> bool {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let total: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0') * if i % 2 == 1 { 2 } else { 1 };
            d / 10 + d % 10
        })
        .sum();
    total.is_multiple_of(10)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn uscc_agrees_on_random_codes(code in prop::collection::vec(uscc_char(), 18)) {
        let code: String = code.into_iter().collect();
        prop_assert_eq!(check_uscc(&code).is_ok(), reference_uscc_valid(&code), "{}", code);
    }

    #[test]
    fn uscc_agrees_on_random_strings(code in "[0-9A-Z]{16,19}") {
        prop_assert_eq!(check_uscc(&code).is_ok(), reference_uscc_valid(&code), "{}", code);
    }

    #[test]
    fn generated_valid_uscc_pass_and_any_substitution_fails(
        body in uscc_body(),
        pos in 0usize..18,
        replacement in uscc_char(),
    ) {
        let code = uscc_complete(&body).expect("charset body");
        prop_assert!(reference_uscc_valid(&code), "reference rejects {}", code);
        prop_assert_eq!(check_uscc(&code), Ok(()));
        prop_assert_eq!(
            uscc_check_char(&code[..17]),
            code.chars().nth(17)
        );
        let mut chars: Vec<char> = code.chars().collect();
        prop_assume!(chars[pos] != replacement);
        chars[pos] = replacement;
        let changed: String = chars.into_iter().collect();
        // One substituted character always changes sum mod 31 (weights are units mod 31).
        prop_assert!(check_uscc(&changed).is_err(), "{} accepted", changed);
        prop_assert!(!reference_uscc_valid(&changed));
    }

    #[test]
    fn resident_id_agrees(body in "[0-9]{17}", check in prop::sample::select(b"0123456789Xx".to_vec())) {
        let mut id = body.into_bytes();
        id.push(check);
        prop_assert_eq!(resident_id_check(&id), reference_resident_id(&id));
    }

    #[test]
    fn resident_id_generated_valid(body in "[0-9]{17}") {
        // Exactly one check character completes any body.
        let valid: Vec<u8> = b"0123456789X"
            .iter()
            .copied()
            .filter(|c| {
                let mut id = body.clone().into_bytes();
                id.push(*c);
                reference_resident_id(&id)
            })
            .collect();
        prop_assert_eq!(valid.len(), 1);
        let mut id = body.into_bytes();
        id.push(valid[0]);
        prop_assert!(resident_id_check(&id));
    }

    #[test]
    fn resident_id_arbitrary_bytes(id in prop::collection::vec(any::<u8>(), 0..20)) {
        prop_assert_eq!(resident_id_check(&id), reference_resident_id(&id));
    }

    #[test]
    fn luhn_agrees(digits in "[0-9]{1,19}") {
        prop_assert_eq!(luhn_valid(digits.as_bytes()), reference_luhn(digits.as_bytes()));
    }
}

#[test]
fn references_accept_the_domain_md_examples() {
    assert!(reference_uscc_valid("91350100M000100Y43"));
    assert!(!reference_uscc_valid("91350100M000100Y44"));
    assert!(reference_resident_id(b"11010519491231002X"));
    assert!(reference_resident_id(b"440524188001010014"));
    assert!(!reference_resident_id(b"110105194912310021"));
    assert!(reference_luhn(b"4111111111111111"));
    assert!(!reference_luhn(b"4111111111111112"));
}
