//! Exact money: decimal strings at the edges, integer micro-units (10⁻⁶) inside.
//!
//! No floating point anywhere on the money path. A JSON amount is a string such as `"12.34"`;
//! numbers are refused because a JSON number has already lost its exactness in most clients.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Micro-units per currency unit.
pub const MICROS_PER_UNIT: i64 = 1_000_000;
/// The largest amount, budget, cap and period total (SPEC §3): one billion units, 10¹⁵ micro-units.
/// Anything that would exceed it is refused, never wrapped; the sum of two such values is still
/// far inside `i64` (≈ 9.2 × 10¹⁸).
pub const MAX_MICROS: i64 = 1_000_000_000 * MICROS_PER_UNIT;

/// An exact, non-negative amount of money in micro-units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(i64);

/// Why a string is not an acceptable amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("must be a decimal number written as a string, such as \"12.34\"")]
    NotDecimal,
    #[error("must have at most 6 decimal places")]
    TooPrecise,
    #[error("must not be negative")]
    Negative,
    #[error("must be greater than zero")]
    NotPositive,
    #[error("is too large (at most 1000000000)")]
    TooLarge,
}

impl Money {
    pub const ZERO: Money = Money(0);

    /// An amount from micro-units as stored in the database.
    pub const fn from_micros(micros: i64) -> Self {
        Money(micros)
    }

    pub const fn micros(self) -> i64 {
        self.0
    }

    /// The sum, if it stays within [`MAX_MICROS`]; `None` where it would exceed it (or `i64`).
    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0
            .checked_add(other.0)
            .filter(|sum| *sum <= MAX_MICROS)
            .map(Money)
    }

    pub fn to_decimal(self) -> Decimal {
        Decimal::new(self.0, 6)
    }

    /// Parses a budget or cap: zero allowed (a budget of 0 allows no spend).
    pub fn parse_non_negative(s: &str) -> Result<Self, MoneyError> {
        let d = parse_decimal(s)?;
        Self::from_decimal(d)
    }

    /// Parses a spend amount: strictly positive.
    pub fn parse_positive(s: &str) -> Result<Self, MoneyError> {
        let m = Self::parse_non_negative(s)?;
        if m.0 == 0 {
            return Err(MoneyError::NotPositive);
        }
        Ok(m)
    }

    pub fn from_decimal(d: Decimal) -> Result<Self, MoneyError> {
        if d.is_sign_negative() && !d.is_zero() {
            return Err(MoneyError::Negative);
        }
        let d = d.normalize();
        if d.scale() > 6 {
            return Err(MoneyError::TooPrecise);
        }
        let micros = d
            .checked_mul(Decimal::from(MICROS_PER_UNIT))
            .ok_or(MoneyError::TooLarge)?;
        let micros: i64 = micros.try_into().map_err(|_| MoneyError::TooLarge)?;
        if micros > MAX_MICROS {
            return Err(MoneyError::TooLarge);
        }
        Ok(Money(micros))
    }
}

fn parse_decimal(s: &str) -> Result<Decimal, MoneyError> {
    // Spaces, tabs and line ends around the number (not Unicode's other spaces: the document's
    // pattern says `[ \t\n\r]`, which every regex dialect reads alike).
    let s = s.trim_matches([' ', '\t', '\n', '\r']);
    // Only plain decimal notation: digits, one optional point, an optional leading sign.
    // Rejects exponents, "NaN", "1_000", thousands separators and the empty string.
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let digits_ok = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if body.is_empty() || (int.is_empty() && frac.is_empty()) || !digits_ok(int) || !digits_ok(frac)
    {
        return Err(MoneyError::NotDecimal);
    }
    if s.starts_with('-') && body.bytes().any(|b| (b'1'..=b'9').contains(&b)) {
        return Err(MoneyError::Negative);
    }
    if frac.trim_end_matches('0').len() > 6 {
        return Err(MoneyError::TooPrecise);
    }
    // More than 10 integer digits cannot be ≤ MAX_MICROS, and would overflow Decimal's 28 digits.
    if int.trim_start_matches('0').len() > 10 {
        return Err(MoneyError::TooLarge);
    }
    let frac = frac.trim_end_matches('0');
    let normalized = if frac.is_empty() {
        if int.is_empty() { "0" } else { int }.to_owned()
    } else {
        format!("{}.{}", if int.is_empty() { "0" } else { int }, frac)
    };
    Decimal::from_str(&normalized).map_err(|_| MoneyError::NotDecimal)
}

impl fmt::Display for Money {
    /// Plain notation with at least two decimals: `"12.34"`, `"100.00"`, `"0.000001"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = self.to_decimal().normalize();
        if d.scale() < 2 {
            d.rescale(2);
        }
        write!(f, "{d}")
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A spend amount in a request: a decimal string, strictly positive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PositiveMoney(pub Money);

/// A budget or cap in a request: a decimal string, zero or more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NonNegativeMoney(pub Money);

struct MoneyVisitor {
    positive: bool,
}

impl serde::de::Visitor<'_> for MoneyVisitor {
    type Value = Money;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a decimal number written as a string, such as \"12.34\"")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Money, E> {
        let parsed = if self.positive {
            Money::parse_positive(v)
        } else {
            Money::parse_non_negative(v)
        };
        parsed.map_err(E::custom)
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Money, E> {
        Err(E::custom(MoneyError::NotDecimal))
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Money, E> {
        Err(E::custom(MoneyError::NotDecimal))
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Money, E> {
        Err(E::custom(MoneyError::NotDecimal))
    }
}

impl<'de> Deserialize<'de> for PositiveMoney {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(MoneyVisitor { positive: true })
            .map(PositiveMoney)
    }
}

impl<'de> Deserialize<'de> for NonNegativeMoney {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(MoneyVisitor { positive: false })
            .map(NonNegativeMoney)
    }
}

impl utoipa::PartialSchema for Money {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        money_schema_with(
            "An exact amount: a decimal string with at most 6 decimal places; negative only for a spend reversal.",
            r"^-?[0-9]{0,10}(\.[0-9]*)?$",
        )
    }
}
impl utoipa::ToSchema for Money {}

/// What [`Money::parse_positive`] accepts, as a pattern for the OpenAPI document (tested against
/// the parser below): optional surrounding whitespace, an optional `+`, leading zeros, at most six
/// significant decimals (trailing zeros carry none), greater than zero and at most 1000000000.
pub const POSITIVE_PATTERN: &str = concat!(
    r"^[ \t\n\r]*\+?(?:",
    r"0*[1-9][0-9]{0,8}(?:\.[0-9]{0,6}0*)?",
    r"|0*\.[0-9]{0,5}[1-9]0*",
    r"|0*1000000000(?:\.0*)?",
    r")[ \t\n\r]*$"
);

/// What [`Money::parse_non_negative`] accepts: the same from zero (`-0` included).
pub const NON_NEGATIVE_PATTERN: &str = concat!(
    r"^[ \t\n\r]*(?:\+?(?:",
    r"0*[0-9]{1,9}(?:\.[0-9]{0,6}0*)?",
    r"|0*\.[0-9]{1,6}0*",
    r"|0*1000000000(?:\.0*)?",
    r")|-(?:0+(?:\.0*)?|0*\.0+))[ \t\n\r]*$"
);

impl utoipa::PartialSchema for PositiveMoney {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        money_schema_with(
            "A spend amount greater than zero and at most 1000000000: a decimal string with at most 6 decimal places.",
            POSITIVE_PATTERN,
        )
    }
}
impl utoipa::ToSchema for PositiveMoney {}

impl utoipa::PartialSchema for NonNegativeMoney {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        money_schema_with(
            "A budget or cap, from zero to 1000000000: a decimal string with at most 6 decimal places.",
            NON_NEGATIVE_PATTERN,
        )
    }
}
impl utoipa::ToSchema for NonNegativeMoney {}

fn money_schema_with(
    description: &str,
    pattern: &str,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern))
        .description(Some(description))
        .examples([serde_json::json!("12.34")])
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The OpenAPI document's patterns say exactly what the parsers accept (schemathesis
        /// checks both ways: what matches must be accepted, what does not must be refused).
        #[test]
        fn the_documented_patterns_are_the_parsers(s in "[ \t\u{2003}\u{1c}0-9.+-]{0,14}|[0-9]{9,11}(\\.[0-9]{0,8})?") {
            let positive = regex::Regex::new(POSITIVE_PATTERN).unwrap();
            let non_negative = regex::Regex::new(NON_NEGATIVE_PATTERN).unwrap();
            proptest::prop_assert_eq!(positive.is_match(&s), Money::parse_positive(&s).is_ok(), "positive {:?}", s);
            proptest::prop_assert_eq!(non_negative.is_match(&s), Money::parse_non_negative(&s).is_ok(), "non-negative {:?}", s);
        }
    }

    #[test]
    fn the_documented_patterns_on_the_edges() {
        let positive = regex::Regex::new(POSITIVE_PATTERN).unwrap();
        let non_negative = regex::Regex::new(NON_NEGATIVE_PATTERN).unwrap();
        for s in [
            "0",
            "-0",
            "+0",
            "-0.000",
            "-.0",
            "0.0000001",
            "0.1000000",
            "5.",
            ".5",
            ".",
            "",
            "1000000000",
            "1000000000.0",
            "1000000000.000001",
            "999999999.999999",
            "9999999999",
            "00000000000001",
            " 12.34 ",
            "1e5",
            "+",
            "-",
            "-1",
            "0.000001",
            "12.3456789",
        ] {
            assert_eq!(
                positive.is_match(s),
                Money::parse_positive(s).is_ok(),
                "positive {s:?}"
            );
            assert_eq!(
                non_negative.is_match(s),
                Money::parse_non_negative(s).is_ok(),
                "non-negative {s:?}"
            );
        }
    }

    #[test]
    fn parses_up_to_six_decimals() {
        assert_eq!(Money::parse_positive("12.34").unwrap().micros(), 12_340_000);
        assert_eq!(Money::parse_positive("0.000001").unwrap().micros(), 1);
        assert_eq!(
            Money::parse_positive("1.123456").unwrap().micros(),
            1_123_456
        );
        assert_eq!(Money::parse_positive("5").unwrap().micros(), 5_000_000);
        assert_eq!(Money::parse_positive(".5").unwrap().micros(), 500_000);
        assert_eq!(Money::parse_positive("5.").unwrap().micros(), 5_000_000);
        // Trailing zeros beyond the sixth place carry no precision.
        assert_eq!(
            Money::parse_positive("1.50000000").unwrap().micros(),
            1_500_000
        );
    }

    #[test]
    fn rejects_seven_decimals() {
        assert_eq!(
            Money::parse_positive("0.0000001"),
            Err(MoneyError::TooPrecise)
        );
        assert_eq!(
            Money::parse_positive("1.1234567"),
            Err(MoneyError::TooPrecise)
        );
    }

    #[test]
    fn rejects_huge_amounts() {
        assert_eq!(
            Money::parse_positive("1000000000.000001"),
            Err(MoneyError::TooLarge)
        );
        // The old limit (10^12 units), which let ten events wrap a period total.
        assert_eq!(
            Money::parse_positive("1000000000000"),
            Err(MoneyError::TooLarge)
        );
        assert_eq!(
            Money::parse_positive("99999999999999999999999999999999"),
            Err(MoneyError::TooLarge)
        );
        assert!(Money::parse_positive("1000000000").is_ok());
    }

    #[test]
    fn rejects_negative_and_zero_spend() {
        assert_eq!(Money::parse_positive("-1"), Err(MoneyError::Negative));
        assert_eq!(Money::parse_positive("-0.01"), Err(MoneyError::Negative));
        assert_eq!(Money::parse_positive("0"), Err(MoneyError::NotPositive));
        assert_eq!(Money::parse_positive("0.000"), Err(MoneyError::NotPositive));
        assert_eq!(Money::parse_positive("-0"), Err(MoneyError::NotPositive));
        // A budget may be zero.
        assert_eq!(Money::parse_non_negative("0").unwrap(), Money::ZERO);
        assert_eq!(Money::parse_non_negative("-5"), Err(MoneyError::Negative));
    }

    #[test]
    fn rejects_non_decimal_input() {
        for bad in [
            "", " ", "abc", "1e3", "1,5", "1.2.3", "NaN", "inf", ".", "--1", "1_000", "0x10", "١٢",
        ] {
            assert_eq!(
                Money::parse_positive(bad),
                Err(MoneyError::NotDecimal),
                "input {bad:?}"
            );
        }
    }

    #[test]
    fn formats_with_at_least_two_decimals() {
        assert_eq!(Money::from_micros(12_340_000).to_string(), "12.34");
        assert_eq!(Money::from_micros(100_000_000).to_string(), "100.00");
        assert_eq!(Money::from_micros(1).to_string(), "0.000001");
        assert_eq!(Money::ZERO.to_string(), "0.00");
        assert_eq!(Money::from_micros(MAX_MICROS).to_string(), "1000000000.00");
    }

    #[test]
    fn json_amounts_must_be_strings() {
        let ok: PositiveMoney = serde_json::from_str("\"7.5\"").unwrap();
        assert_eq!(ok.0.micros(), 7_500_000);
        let err = serde_json::from_str::<PositiveMoney>("7.5").unwrap_err();
        assert!(
            err.to_string()
                .contains("decimal number written as a string"),
            "{err}"
        );
        let err = serde_json::from_str::<PositiveMoney>("\"-1\"").unwrap_err();
        assert!(err.to_string().contains("must not be negative"), "{err}");
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn format_then_parse_is_the_identity(micros in 0i64..=MAX_MICROS) {
            let m = Money::from_micros(micros);
            prop_assert_eq!(Money::parse_non_negative(&m.to_string()), Ok(m));
        }

        #[test]
        fn nothing_above_the_maximum_is_accepted(extra in 1i64..1_000_000_000_000) {
            let too_much = Money::from_micros(MAX_MICROS.saturating_add(extra));
            prop_assert_eq!(Money::parse_positive(&too_much.to_string()), Err(MoneyError::TooLarge));
        }

        #[test]
        fn seven_significant_decimals_are_refused(units in 0u64..1_000_000, frac in 1u64..10_000_000) {
            prop_assume!(frac % 10 != 0);
            prop_assert_eq!(Money::parse_positive(&format!("{units}.{frac:07}")), Err(MoneyError::TooPrecise));
        }

        #[test]
        fn checked_add_never_exceeds_the_limit(a in 0i64..=MAX_MICROS, b in 0i64..=i64::MAX) {
            let sum = Money::from_micros(a).checked_add(Money::from_micros(b));
            match a.checked_add(b) {
                Some(exact) if exact <= MAX_MICROS => prop_assert_eq!(sum, Some(Money::from_micros(exact))),
                _ => prop_assert_eq!(sum, None),
            }
        }

        #[test]
        fn checked_add_at_the_limit(a in 0i64..=MAX_MICROS) {
            let rest = Money::from_micros(MAX_MICROS - a);
            prop_assert_eq!(Money::from_micros(a).checked_add(rest), Some(Money::from_micros(MAX_MICROS)));
            prop_assert_eq!(Money::from_micros(a).checked_add(Money::from_micros(MAX_MICROS - a + 1)), None);
        }

        #[test]
        fn any_string_parses_or_fails_without_panicking(s in ".{0,40}") {
            if let Ok(m) = Money::parse_non_negative(&s) {
                prop_assert!(m.micros() >= 0 && m.micros() <= MAX_MICROS);
            }
        }
    }
}
