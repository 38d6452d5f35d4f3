//! Roles (DESIGN §4): who a token or client certificate speaks for. What each role may
//! send is decided in `permission.rs`, which sees both the roles and the messages; this
//! module depends on neither, so the messages can name a role.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Holds (reserve, extend, release, commit), releasing committed units, placing
    /// orders, payment events, and every query.
    Checkout,
    /// Shipment steps, short picks, return receipts, consuming committed units, and
    /// every query.
    Fulfilment,
    /// Everything, including locations and stock.
    Admin,
    /// Queries only.
    Read,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Checkout => "checkout",
            Role::Fulfilment => "fulfilment",
            Role::Admin => "admin",
            Role::Read => "read",
        }
    }

    /// Parses a role as configuration files spell it.
    pub fn from_name(name: &str) -> Option<Role> {
        [Role::Checkout, Role::Fulfilment, Role::Admin, Role::Read]
            .into_iter()
            .find(|role| role.name() == name)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
