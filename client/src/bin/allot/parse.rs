//! Parsing of what operators type or put in CSV files: hold and order lines, addresses,
//! return receipts, coordinates, kinds, channels, states, yes/no flags. Every error names
//! the offending text.

use allot_client::protocol::limits::{LATITUDE_E6_MAX, LONGITUDE_E6_MAX};
use allot_client::protocol::order::{
    Address, Channel, ItemQuantity, OrderLine, OrderState, ReturnCondition, ReturnReceipt,
};
use allot_client::protocol::{CellKey, LineRequest, LocationKind};

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

/// A cell as SKU@LOCATION (the cursor of a shortage page).
pub fn cell_key(text: &str) -> Result<CellKey, String> {
    let (sku, location) = text
        .rsplit_once('@')
        .ok_or_else(|| format!("{text:?} is not SKU@LOCATION (no @LOCATION)"))?;
    if sku.is_empty() || location.is_empty() {
        return Err(format!("{text:?} has an empty SKU or location"));
    }
    Ok(CellKey { sku: sku.to_owned(), location: location.to_owned() })
}

/// A quantity after a `:`: a whole number of at least one.
fn positive_quantity(text: &str, quantity: &str) -> Result<u32, String> {
    let quantity: u32 =
        quantity.parse().map_err(|_| format!("{text:?} has a bad quantity {quantity:?}"))?;
    if quantity == 0 {
        return Err(format!("{text:?} has a zero quantity"));
    }
    Ok(quantity)
}

/// A SKU and quantity `SKU:QTY` (cancelled or missing units, routed hold and return
/// lines). The quantity follows the last `:`, so a SKU may itself contain `:`.
pub fn item_spec(text: &str) -> Result<ItemQuantity, String> {
    let (sku, quantity) =
        text.rsplit_once(':').ok_or_else(|| format!("{text:?} is not SKU:QTY (no :QTY)"))?;
    if sku.is_empty() {
        return Err(format!("{text:?} has an empty SKU"));
    }
    Ok(ItemQuantity { sku: sku.to_owned(), quantity: positive_quantity(text, quantity)? })
}

/// An order line `SKU:QTY:PRICE`, the unit price in minor units (pence, cents). The
/// price follows the last `:` and the quantity the one before.
pub fn order_line_spec(text: &str) -> Result<OrderLine, String> {
    let (item, price) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("{text:?} is not SKU:QTY:PRICE (no :PRICE)"))?;
    let (sku, quantity) =
        item.rsplit_once(':').ok_or_else(|| format!("{text:?} is not SKU:QTY:PRICE (no :QTY)"))?;
    if sku.is_empty() {
        return Err(format!("{text:?} has an empty SKU"));
    }
    let quantity = positive_quantity(text, quantity)?;
    let unit_price_minor: i64 = price
        .parse()
        .map_err(|_| format!("{text:?} has a bad price {price:?} (whole minor units)"))?;
    if unit_price_minor < 0 {
        return Err(format!("{text:?} has a negative price"));
    }
    Ok(OrderLine { sku: sku.to_owned(), quantity, unit_price_minor })
}

/// A delivery address `LAT,LON,COUNTRY,POSTCODE`: decimal degrees, an ISO 3166 alpha-2
/// country (upper-cased), and the postcode, which is everything after the third comma.
pub fn ship_to(text: &str) -> Result<Address, String> {
    let mut parts = text.splitn(4, ',');
    let (Some(latitude), Some(longitude), Some(country), Some(postcode)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("{text:?} is not LAT,LON,COUNTRY,POSTCODE"));
    };
    let country = country.trim().to_ascii_uppercase();
    if country.len() != 2 || !country.bytes().all(|byte| byte.is_ascii_uppercase()) {
        return Err(format!("{text:?} has a country {country:?} that is not two letters"));
    }
    let postcode = postcode.trim();
    if postcode.is_empty() {
        return Err(format!("{text:?} has an empty postcode"));
    }
    Ok(Address {
        latitude_e6: latitude_e6(latitude)?,
        longitude_e6: longitude_e6(longitude)?,
        country,
        postcode: postcode.to_owned(),
    })
}

/// Returned units `SKU:QTY:resellable` or `SKU:QTY:damaged:REASON`. The reason is
/// everything after `damaged:`, so it may contain `:`; so may the SKU.
pub fn receipt_spec(text: &str) -> Result<ReturnReceipt, String> {
    let usage = || format!("{text:?} is not SKU:QTY:resellable or SKU:QTY:damaged:REASON");
    let receipt = |item: &str, condition| {
        let (sku, quantity) = item.rsplit_once(':')?;
        let quantity = quantity.parse().ok().filter(|&quantity| quantity > 0)?;
        (!sku.is_empty()).then(|| ReturnReceipt { sku: sku.to_owned(), quantity, condition })
    };
    if let Some(item) = text.strip_suffix(":resellable") {
        return receipt(item, ReturnCondition::Resellable).ok_or_else(usage);
    }
    // The first `:damaged:` after a well-formed SKU:QTY starts the reason.
    for (at, _) in text.match_indices(":damaged:") {
        let reason = &text[at + ":damaged:".len()..];
        let condition = ReturnCondition::Damaged { reason: reason.to_owned() };
        if let Some(parsed) = receipt(&text[..at], condition) {
            if reason.is_empty() {
                return Err(format!("{text:?} has no reason for the damage"));
            }
            return Ok(parsed);
        }
    }
    Err(usage())
}

/// A channel as the protocol names it (`web`, `call_centre`; `call-centre` and any case
/// are accepted too).
pub fn channel(text: &str) -> Result<Channel, String> {
    let name = text.trim().to_ascii_lowercase().replace('-', "_");
    Channel::from_name(&name).ok_or_else(|| {
        let names: Vec<&str> = Channel::ALL.iter().map(|channel| channel.name()).collect();
        format!("channel {text:?} is not one of {}", names.join(", "))
    })
}

/// An order state as the protocol names it (`confirmed`, `partially_shipped`; dashes and
/// any case are accepted too).
pub fn order_state(text: &str) -> Result<OrderState, String> {
    let name = text.trim().to_ascii_lowercase().replace('-', "_");
    OrderState::from_name(&name).ok_or_else(|| {
        let names: Vec<&str> = OrderState::ALL.iter().map(|state| state.name()).collect();
        format!("order state {text:?} is not one of {}", names.join(", "))
    })
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
    fn an_item_spec_is_sku_colon_quantity() {
        assert_eq!(item_spec("SKU-1:3"), Ok(ItemQuantity { sku: "SKU-1".into(), quantity: 3 }));
        assert_eq!(item_spec("a:b:2").unwrap().sku, "a:b");
        for (text, expected) in [
            ("SKU", "no :QTY"),
            (":3", "empty SKU"),
            ("SKU:0", "zero quantity"),
            ("SKU:x", "bad quantity"),
            ("SKU:-2", "bad quantity"),
        ] {
            let error = item_spec(text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn an_order_line_is_sku_quantity_and_price_in_minor_units() {
        let line = order_line_spec("TEE-RED-M:2:1500").unwrap();
        assert_eq!(
            line,
            OrderLine { sku: "TEE-RED-M".into(), quantity: 2, unit_price_minor: 1_500 }
        );
        assert_eq!(order_line_spec("GIFT:1:0").unwrap().unit_price_minor, 0, "a free item");
        assert_eq!(order_line_spec("a:b:1:5").unwrap().sku, "a:b");
        for (text, expected) in [
            ("SKU:2", "no :QTY"),
            ("SKU", "no :PRICE"),
            (":2:100", "empty SKU"),
            ("SKU:0:100", "zero quantity"),
            ("SKU:2:15.00", "bad price"),
            ("SKU:2:", "bad price"),
            ("SKU:2:-1", "negative price"),
        ] {
            let error = order_line_spec(text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn a_ship_to_address_is_degrees_country_and_postcode() {
        let address = ship_to("51.501009,-0.141588,gb,SW1A 1AA").unwrap();
        assert_eq!(
            address,
            Address {
                latitude_e6: 51_501_009,
                longitude_e6: -141_588,
                country: "GB".into(),
                postcode: "SW1A 1AA".into(),
            }
        );
        assert_eq!(ship_to("-33.86,151.21,AU,2000, NSW").unwrap().postcode, "2000, NSW");
        for (text, expected) in [
            ("51.5,-0.14,GB", "not LAT,LON,COUNTRY,POSTCODE"),
            ("51.5,-0.14,GBR,SW1A", "not two letters"),
            ("51.5,-0.14,G1,SW1A", "not two letters"),
            ("51.5,-0.14,GB, ", "empty postcode"),
            ("north,-0.14,GB,SW1A", "not a number"),
            ("91,-0.14,GB,SW1A", "outside"),
        ] {
            let error = ship_to(text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn a_receipt_is_resellable_or_damaged_with_a_reason() {
        let resellable = receipt_spec("SKU-1:2:resellable").unwrap();
        assert_eq!(
            resellable,
            ReturnReceipt {
                sku: "SKU-1".into(),
                quantity: 2,
                condition: ReturnCondition::Resellable
            }
        );
        let damaged = receipt_spec("SKU-1:1:damaged:torn seam: left sleeve").unwrap();
        assert_eq!(
            damaged.condition,
            ReturnCondition::Damaged { reason: "torn seam: left sleeve".into() }
        );
        let odd = receipt_spec("a:damaged:b:3:damaged:wet").unwrap();
        assert_eq!((odd.sku.as_str(), odd.quantity), ("a:damaged:b", 3));
        for (text, expected) in [
            ("SKU-1:2", "is not SKU:QTY:resellable"),
            ("SKU-1:2:broken", "is not SKU:QTY:resellable"),
            ("SKU-1:0:resellable", "is not SKU:QTY:resellable"),
            (":2:resellable", "is not SKU:QTY:resellable"),
            ("SKU-1:2:damaged:", "no reason"),
        ] {
            let error = receipt_spec(text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn channels_and_states_use_the_protocol_names() {
        assert_eq!(channel("web"), Ok(Channel::Web));
        assert_eq!(channel("Call-Centre"), Ok(Channel::CallCentre));
        assert!(channel("fax").unwrap_err().contains("web, app, marketplace"));
        for state in OrderState::ALL {
            assert_eq!(order_state(state.name()), Ok(state));
        }
        assert_eq!(order_state("partially-shipped"), Ok(OrderState::PartiallyShipped));
        assert!(order_state("lost").unwrap_err().contains("pending, confirmed"));
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
