//! What each role may send: the server asks [`Role::permits`] before a request reaches
//! the engine. It lives apart from `role.rs` so that roles depend on nothing and the
//! messages (which name a role in the handshake) depend on roles, never the reverse.

use crate::message::{Command, RequestBody};
use crate::role::Role;

impl Role {
    /// Whether this role may send `body`. Pings and queries are open to every role.
    pub fn permits(self, body: &RequestBody) -> bool {
        match body {
            RequestBody::Ping | RequestBody::Query(_) => true,
            RequestBody::Command { command, .. } => self.permits_command(command),
        }
    }

    fn permits_command(self, command: &Command) -> bool {
        match self {
            Role::Admin => true,
            Role::Checkout => matches!(
                command,
                Command::Reserve { .. }
                    | Command::ExtendHold { .. }
                    | Command::ReleaseHold { .. }
                    | Command::CommitHold { .. }
                    | Command::ReserveRouted { .. }
                    | Command::PlaceOrder(_)
                    | Command::RecordPayment { .. }
                    | Command::ReleaseCommitted { .. }
            ),
            Role::Fulfilment => matches!(
                command,
                Command::AdvanceShipment { .. }
                    | Command::ShortPick { .. }
                    | Command::ReceiveReturn { .. }
                    | Command::ConsumeCommitted { .. }
            ),
            Role::Read => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Query;

    fn command(command: Command) -> RequestBody {
        RequestBody::Command { idempotency_key: None, command }
    }

    #[test]
    fn checkout_may_hold_but_not_receive_stock() {
        let reserve = command(Command::Reserve { lines: vec![], ttl_ms: None });
        let receive =
            command(Command::Receive { sku: "S".into(), location: "L".into(), quantity: 1 });
        assert!(Role::Checkout.permits(&reserve));
        assert!(!Role::Checkout.permits(&receive));
        assert!(Role::Admin.permits(&receive));
    }

    #[test]
    fn read_and_fulfilment_may_query_but_not_hold() {
        let reserve = command(Command::Reserve { lines: vec![], ttl_ms: None });
        assert!(Role::Checkout.permits(&RequestBody::Query(Query::Kpis)));
        for role in [Role::Read, Role::Fulfilment] {
            assert!(role.permits(&RequestBody::Query(Query::Locations)));
            assert!(role.permits(&RequestBody::Ping));
            assert!(!role.permits(&reserve));
        }
    }

    #[test]
    fn fulfilment_may_move_shipments_but_not_place_orders() {
        let advance = command(Command::AdvanceShipment {
            shipment: 1,
            step: crate::order::ShipmentStep::Release,
        });
        let cancel = command(Command::CancelOrder { order: 1, reason: "customer".into() });
        assert!(Role::Fulfilment.permits(&advance));
        assert!(!Role::Fulfilment.permits(&cancel));
        assert!(!Role::Checkout.permits(&advance));
        assert!(Role::Admin.permits(&cancel) && Role::Admin.permits(&advance));
    }

    #[test]
    fn checkout_may_release_committed_units_and_only_fulfilment_or_admin_consume_them() {
        let consume = command(Command::ConsumeCommitted { hold: 1, lines: vec![] });
        let release = command(Command::ReleaseCommitted { hold: 1, lines: vec![] });
        assert!(Role::Checkout.permits(&release) && !Role::Checkout.permits(&consume));
        assert!(Role::Fulfilment.permits(&consume) && !Role::Fulfilment.permits(&release));
        assert!(Role::Admin.permits(&consume) && Role::Admin.permits(&release));
        assert!(!Role::Read.permits(&consume) && !Role::Read.permits(&release));
    }

    #[test]
    fn role_names_round_trip() {
        for role in [Role::Checkout, Role::Fulfilment, Role::Admin, Role::Read] {
            assert_eq!(Role::from_name(role.name()), Some(role));
        }
        assert_eq!(Role::from_name("root"), None);
    }
}
