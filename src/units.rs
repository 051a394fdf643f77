//! Numbers with units as the language writes them: exact decimals, and durations in
//! milliseconds (`90s`, `3d`). A leaf: it depends on nothing else in the crate.

/// A decimal `number` times `factor`, if the product is a whole number.
pub fn scale_decimal(number: &str, factor: i128) -> Option<i128> {
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    let scale = 10i128.checked_pow(frac.len() as u32)?;
    let digits: i128 = format!("{int}{frac}").parse().ok()?;
    let scaled = digits.checked_mul(factor)?;
    (scaled % scale == 0).then_some(scaled / scale)
}

/// Milliseconds as the shortest exact form: `3d`, `8h`, `90s`, `250ms`.
pub fn format_duration(ms: i64) -> String {
    const UNITS: [(&str, i64); 4] = [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ];
    if ms == 0 {
        return "0s".into();
    }
    for (unit, size) in UNITS {
        if ms % size == 0 {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// `number` `unit` as milliseconds; `None` if not whole or out of range.
pub fn parse_duration_ms(number: &str, unit: &str) -> Option<i64> {
    let factor: i128 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    i64::try_from(scale_decimal(number, factor)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_in_their_largest_exact_unit() {
        assert_eq!(format_duration(3 * 86_400_000), "3d");
        assert_eq!(format_duration(90_000), "90s");
        assert_eq!(format_duration(36 * 3_600_000), "36h");
        assert_eq!(format_duration(1_500), "1500ms");
    }
}
