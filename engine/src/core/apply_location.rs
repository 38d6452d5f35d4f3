//! Handlers for location commands.

use super::command::LocationSpec;
use super::limits::{
    LATITUDE_E6_MAX, LOCATION_CODE_BYTES_MAX, LOCATION_NAME_BYTES_MAX, LOCATIONS_MAX,
    LONGITUDE_E6_MAX,
};
use super::outcome::{EngineError, Outcome, Reply};
use super::state::State;
use super::validate::{invalid, text};

impl State {
    pub(crate) fn upsert_location(&mut self, spec: &LocationSpec) -> Outcome {
        check_location_spec(spec)?;
        let id = match self.location_codes.get(&spec.code) {
            Some(id) => id,
            None if self.locations.len() >= LOCATIONS_MAX => {
                return Err(invalid(format!("location limit of {LOCATIONS_MAX} reached")));
            }
            None => {
                let id = self.location_codes.intern(&spec.code);
                self.locations.push(spec.clone());
                id
            }
        };
        self.locations[id as usize] = spec.clone();
        Ok(Reply::Location(self.location_view(id)))
    }

    pub(crate) fn deactivate_location(&mut self, code: &str) -> Outcome {
        let id = self.location_id(code)?;
        self.locations[id as usize].active = false;
        Ok(Reply::Location(self.location_view(id)))
    }

    /// The id of an existing location.
    pub(crate) fn location_id(&self, code: &str) -> Result<u32, EngineError> {
        if code.len() > LOCATION_CODE_BYTES_MAX {
            let message =
                format!("location code is {} bytes, over {LOCATION_CODE_BYTES_MAX}", code.len());
            return Err(invalid(message));
        }
        self.location_codes
            .get(code)
            .ok_or_else(|| EngineError::NotFound(format!("location {code}")))
    }
}

fn check_location_spec(spec: &LocationSpec) -> Result<(), EngineError> {
    text("location code", &spec.code, LOCATION_CODE_BYTES_MAX)?;
    if spec.name.len() > LOCATION_NAME_BYTES_MAX {
        return Err(invalid(format!("location name is over {LOCATION_NAME_BYTES_MAX} bytes")));
    }
    if spec.latitude_e6.abs() > LATITUDE_E6_MAX {
        return Err(invalid(format!("latitude_e6 {} is out of range", spec.latitude_e6)));
    }
    if spec.longitude_e6.abs() > LONGITUDE_E6_MAX {
        return Err(invalid(format!("longitude_e6 {} is out of range", spec.longitude_e6)));
    }
    let currency = &spec.shipping_cost.currency;
    if currency.len() != 3 || !currency.bytes().all(|byte| byte.is_ascii_uppercase()) {
        return Err(invalid(format!("currency {currency:?} is not an ISO 4217 code")));
    }
    if spec.shipping_cost.base_minor < 0 || spec.shipping_cost.per_km_minor < 0 {
        return Err(invalid("shipping cost is negative"));
    }
    Ok(())
}
