//! Handlers for location commands.

use super::command::LocationSpec;
use super::limits::{LOCATION_CODE_BYTES_MAX, LOCATIONS_MAX};
use super::outcome::{EngineError, Outcome, Reply};
use super::state::State;
use super::validate::invalid;

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
    allot_protocol::check::location_spec(spec).map_err(invalid)
}
