//! Who a stream speaks for: a Hello's bearer token, or a verified client certificate
//! with an empty token, becomes a `Role`.

use std::path::Path;

use allot_protocol::Role;

use super::ServerError;
use super::config::{ServerConfig, TokenConfig};
use super::dev_files::{self, Origin};

/// The credentials a server accepts.
#[derive(Debug, Clone)]
pub struct Tokens {
    entries: Vec<TokenConfig>,
    /// The role of a verified client certificate; `None` without mutual TLS.
    client_cert_role: Option<Role>,
}

impl Tokens {
    pub fn new(entries: Vec<TokenConfig>, client_cert_role: Option<Role>) -> Tokens {
        Tokens { entries, client_cert_role }
    }

    /// The configured tokens, or the development admin token when there are none.
    pub fn from_config(config: &ServerConfig) -> Result<Tokens, ServerError> {
        let client_cert_role = config.client_ca.as_ref().map(|_| config.client_cert_role);
        if !config.tokens.is_empty() {
            return Ok(Tokens::new(config.tokens.clone(), client_cert_role));
        }
        let dev = dev_admin_token(&config.data_dir)?;
        Ok(Tokens::new(vec![dev], client_cert_role))
    }

    /// The role a Hello gets, with the credential's name for logs: its token's, or with
    /// an empty token and a verified client certificate, the certificate role. `None`
    /// means `Unauthorized`.
    pub fn authenticate(&self, token: &str, cert_verified: bool) -> Option<(Role, &str)> {
        if token.is_empty() {
            return self
                .client_cert_role
                .filter(|_| cert_verified)
                .map(|role| (role, "client certificate"));
        }
        // Every entry is compared, matched or not, so the time taken does not tell an
        // attacker how many configured tokens precede a match or share a prefix.
        let mut found = None;
        for entry in &self.entries {
            if constant_time_eq(entry.token.as_bytes(), token.as_bytes()) {
                found = found.or(Some((entry.role, entry.name.as_str())));
            }
        }
        found
    }
}

fn dev_admin_token(data_dir: &Path) -> Result<TokenConfig, ServerError> {
    let (token, path, origin) = dev_files::dev_token(data_dir)?;
    let verb = if origin == Origin::Created { "created" } else { "using" };
    tracing::info!("no tokens configured: {verb} a development admin token in {}", path.display());
    Ok(TokenConfig { name: "dev-token".into(), token, role: Role::Admin })
}

/// Equality whose time depends only on the lengths, not on where the bytes differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // Keeps the optimiser from turning the fold into an early-exit comparison.
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(token: &str, role: Role) -> TokenConfig {
        TokenConfig { name: format!("{role}-client"), token: token.into(), role }
    }

    #[test]
    fn each_token_gets_its_configured_role_and_others_none() {
        let tokens = Tokens::new(
            vec![token("c-secret", Role::Checkout), token("r-secret", Role::Read)],
            None,
        );
        assert_eq!(
            tokens.authenticate("c-secret", false),
            Some((Role::Checkout, "checkout-client"))
        );
        assert_eq!(tokens.authenticate("r-secret", true), Some((Role::Read, "read-client")));
        assert_eq!(tokens.authenticate("c-secre", false), None);
        assert_eq!(tokens.authenticate("c-secret!", false), None);
    }

    #[test]
    fn an_empty_token_needs_a_verified_certificate_and_mutual_tls() {
        let without_ca = Tokens::new(vec![token("t", Role::Admin)], None);
        assert_eq!(without_ca.authenticate("", true), None);
        let with_ca = Tokens::new(vec![token("t", Role::Admin)], Some(Role::Fulfilment));
        assert_eq!(with_ca.authenticate("", false), None);
        assert_eq!(with_ca.authenticate("", true), Some((Role::Fulfilment, "client certificate")));
    }

    #[test]
    fn without_configured_tokens_the_dev_token_is_admin() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = ServerConfig::new(dir.path());
        let tokens = Tokens::from_config(&config).expect("tokens");
        let (dev, _, _) = dev_files::dev_token(dir.path()).expect("dev token");
        assert_eq!(tokens.authenticate(&dev, false).map(|(role, _)| role), Some(Role::Admin));
    }

    #[test]
    fn with_configured_tokens_no_dev_token_is_made() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = ServerConfig::new(dir.path()).with_token("mine", Role::Read);
        let tokens = Tokens::from_config(&config).expect("tokens");
        assert_eq!(tokens.authenticate("mine", false).map(|(role, _)| role), Some(Role::Read));
        assert!(!dir.path().join(dev_files::DEV_TOKEN_FILE_NAME).exists());
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }
}
