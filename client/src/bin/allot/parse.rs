//! Parsing of what operators type or put in CSV files: hold lines, coordinates, kinds,
//! yes/no flags. Every error names the offending text.

use allot_client::protocol::limits::{LATITUDE_E6_MAX, LONGITUDE_E6_MAX};
use allot_client::protocol::{LineRequest, LocationKind};

/// Microdegrees per degree.
const MICRODEGREES_PER_DEGREE: f64 = 1_000_000.0;

/// A hold line `SKU@LOCATION:QTY`. The quantity follows the last `:` and the location
/// the last `@`, so a SKU may itself contain `@` or `:`.
pub fn line_spec(text: &str) -> Result<LineRequest, String> {
    let (cell, quantity) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("{text:?} is not SKU@LOCATION:QTY (no :QTY)"))?;
    let (sku, location) = cell
        .rsplit_once('@')
        .ok_or_else(|| format!("{text:?} is not SKU@LOCATION:QTY (no @LOCATION)"))?;
    if sku.is_empty() {
        return Err(format!("{text:?} has an empty SKU"));
    }
    if location.is_empty() {
        return Err(format!("{text:?} has an empty location"));
    }
    let quantity: u32 =
        quantity.parse().map_err(|_| format!("{text:?} has a bad quantity {quantity:?}"))?;
    if quantity == 0 {
        return Err(format!("{text:?} has a zero quantity"));
    }
    Ok(LineRequest { sku: sku.to_owned(), location: location.to_owned(), quantity })
}

/// Decimal degrees of latitude as microdegrees.
pub fn latitude_e6(text: &str) -> Result<i32, String> {
    degrees_e6(text, LATITUDE_E6_MAX, "latitude")
}

/// Decimal degrees of longitude as microdegrees.
pub fn longitude_e6(text: &str) -> Result<i32, String> {
    degrees_e6(text, LONGITUDE_E6_MAX, "longitude")
}

fn degrees_e6(text: &str, e6_max: i32, what: &str) -> Result<i32, String> {
    let degrees: f64 =
        text.trim().parse().map_err(|_| format!("{what} {text:?} is not a number of degrees"))?;
    let e6 = (degrees * MICRODEGREES_PER_DEGREE).round();
    if !e6.is_finite() || e6.abs() > f64::from(e6_max) {
        let max = f64::from(e6_max) / MICRODEGREES_PER_DEGREE;
        return Err(format!("{what} {text} is outside -{max}..={max} degrees"));
    }
    Ok(e6 as i32)
}

/// A location kind as the CLI and CSV files spell it (`third-party` or `third_party`).
pub fn location_kind(text: &str) -> Result<LocationKind, String> {
    match text.trim().to_ascii_lowercase().replace('_', "-").as_str() {
        "warehouse" => Ok(LocationKind::Warehouse),
        "store" => Ok(LocationKind::Store),
        "third-party" => Ok(LocationKind::ThirdParty),
        "drop-ship" => Ok(LocationKind::DropShip),
        _ => Err(format!("kind {text:?} is not warehouse, store, third-party or drop-ship")),
    }
}

/// The CLI's spelling of a kind.
pub fn kind_name(kind: LocationKind) -> &'static str {
    match kind {
        LocationKind::Warehouse => "warehouse",
        LocationKind::Store => "store",
        LocationKind::ThirdParty => "third-party",
        LocationKind::DropShip => "drop-ship",
    }
}

/// A yes/no field: true/false, yes/no, y/n, 1/0, in any case.
pub fn flag(field: &str, text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "y" | "1" => Ok(true),
        "false" | "no" | "n" | "0" => Ok(false),
        _ => Err(format!("{field} {text:?} is not true or false")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_spec_is_sku_at_location_colon_quantity() {
        let line = line_spec("SKU-1@LDN:3").unwrap();
        assert_eq!(line, LineRequest { sku: "SKU-1".into(), location: "LDN".into(), quantity: 3 });
        let odd = line_spec("a@b:c@MAN:12").unwrap();
        assert_eq!((odd.sku.as_str(), odd.location.as_str(), odd.quantity), ("a@b:c", "MAN", 12));
    }

    #[test]
    fn bad_line_specs_say_what_is_wrong() {
        let cases = [
            ("SKU@LDN", "no :QTY"),
            ("SKU:3", "no @LOCATION"),
            ("@LDN:3", "empty SKU"),
            ("SKU@:3", "empty location"),
            ("SKU@LDN:x", "bad quantity"),
            ("SKU@LDN:-1", "bad quantity"),
            ("SKU@LDN:0", "zero quantity"),
            ("SKU@LDN:99999999999", "bad quantity"),
        ];
        for (text, expected) in cases {
            let error = line_spec(text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn degrees_become_microdegrees_exactly() {
        assert_eq!(latitude_e6("51.5074"), Ok(51_507_400));
        assert_eq!(longitude_e6("-0.1278"), Ok(-127_800));
        assert_eq!(latitude_e6("-90"), Ok(-90_000_000));
        assert_eq!(longitude_e6("180.0"), Ok(180_000_000));
        assert_eq!(latitude_e6("0.0000005"), Ok(1), "rounded to the nearest microdegree");
        assert_eq!(longitude_e6("12.3456789"), Ok(12_345_679));
    }

    #[test]
    fn degrees_out_of_range_or_not_numbers_are_refused() {
        assert!(latitude_e6("90.000001").unwrap_err().contains("outside"));
        assert!(longitude_e6("-180.5").is_err());
        assert!(latitude_e6("north").unwrap_err().contains("not a number"));
        assert!(latitude_e6("NaN").is_err());
        assert!(longitude_e6("inf").is_err());
    }

    #[test]
    fn kinds_and_flags_accept_the_usual_spellings() {
        assert_eq!(location_kind("third_party"), Ok(LocationKind::ThirdParty));
        assert_eq!(location_kind("Drop-Ship"), Ok(LocationKind::DropShip));
        assert!(location_kind("depot").is_err());
        for kind in [
            LocationKind::Warehouse,
            LocationKind::Store,
            LocationKind::ThirdParty,
            LocationKind::DropShip,
        ] {
            assert_eq!(location_kind(kind_name(kind)), Ok(kind));
        }
        assert_eq!(flag("ships", "Yes"), Ok(true));
        assert_eq!(flag("ships", "0"), Ok(false));
        assert!(flag("ships", "maybe").unwrap_err().contains("ships"));
    }
}
