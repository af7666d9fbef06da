//! Bearer tokens and roles, shared by every HTTP surface of vigil.
//!
//! Roles are ordered: `admin` ⊇ `operator` ⊇ `viewer`; `ingest` is separate (producers write
//! events and read nothing). Tokens are compared in constant time and never logged.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Ingest,
    Viewer,
    Operator,
    Admin,
}

impl Role {
    /// Whether a holder of `self` may do what `needed` allows.
    pub fn allows(self, needed: Role) -> bool {
        use Role::*;
        match needed {
            Ingest => matches!(self, Ingest | Admin),
            Viewer => matches!(self, Viewer | Operator | Admin),
            Operator => matches!(self, Operator | Admin),
            Admin => self == Admin,
        }
    }
}

/// One configured token. `token` may be given inline or, better, through `token_env`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    pub name: String,
    pub role: Role,
    #[serde(default, skip_serializing)]
    pub token: Option<String>,
    #[serde(default)]
    pub token_env: Option<String>,
}

#[derive(Clone, Default)]
pub struct Authenticator {
    tokens: Vec<(String, Role, Vec<u8>)>,
    /// With no tokens configured, auth is off (local demo); say so loudly at start-up.
    open: bool,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets.
        f.debug_struct("Authenticator")
            .field(
                "tokens",
                &self.tokens.iter().map(|t| (&t.0, t.1)).collect::<Vec<_>>(),
            )
            .field("open", &self.open)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token (send `Authorization: Bearer <token>`)")]
    Missing,
    #[error("unknown token")]
    Unknown,
    #[error("token `{name}` has role {have:?}; this needs {need:?}")]
    Forbidden {
        name: String,
        have: Role,
        need: Role,
    },
    #[error("token `{0}`: set `token` or `token_env` (environment variable {1} is empty)")]
    NoSecret(String, String),
}

impl Authenticator {
    /// Accepts every request. Only for local demos and tests.
    pub fn open() -> Self {
        Authenticator {
            tokens: Vec::new(),
            open: true,
        }
    }

    pub fn from_config(tokens: &[TokenConfig]) -> Result<Self, AuthError> {
        if tokens.is_empty() {
            return Ok(Self::open());
        }
        let mut out = Vec::new();
        for t in tokens {
            let secret = match (&t.token, &t.token_env) {
                (Some(s), _) if !s.is_empty() => s.clone(),
                (_, Some(var)) => std::env::var(var)
                    .ok()
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| AuthError::NoSecret(t.name.clone(), var.clone()))?,
                _ => return Err(AuthError::NoSecret(t.name.clone(), "(none)".into())),
            };
            out.push((t.name.clone(), t.role, secret.into_bytes()));
        }
        Ok(Authenticator {
            tokens: out,
            open: false,
        })
    }

    pub fn is_open(&self) -> bool {
        self.open
    }

    /// An `Authorization` header value for vigil's own clients of its server (`vigil bench
    /// ingest`): the first configured token whose role allows `need`. `None` when auth is off or
    /// no token allows it.
    pub fn header_for(&self, need: Role) -> Option<String> {
        self.tokens
            .iter()
            .find(|t| t.1.allows(need))
            .map(|t| format!("Bearer {}", String::from_utf8_lossy(&t.2)))
    }

    /// Checks an `Authorization` header value against the role needed.
    pub fn check(&self, header: Option<&str>, need: Role) -> Result<(), AuthError> {
        self.authorize(header, need).map(|_| ())
    }

    /// Like [`Authenticator::check`], and names who is acting (the token's `name`, or
    /// `anonymous` when auth is off), for audit records.
    pub fn authorize(&self, header: Option<&str>, need: Role) -> Result<String, AuthError> {
        if self.open {
            return Ok("anonymous".to_string());
        }
        let presented = header
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or(AuthError::Missing)?;
        // Compare against every token without early exit so timing reveals nothing.
        let mut found: Option<(&str, Role)> = None;
        for (name, role, secret) in &self.tokens {
            if constant_time_eq(presented.as_bytes(), secret) && found.is_none() {
                found = Some((name, *role));
            }
        }
        let (name, role) = found.ok_or(AuthError::Unknown)?;
        if role.allows(need) {
            Ok(name.to_string())
        } else {
            Err(AuthError::Forbidden {
                name: name.to_string(),
                have: role,
                need,
            })
        }
    }
}

impl Authenticator {
    /// The name and role of a presented token (the dashboards' login form), compared in
    /// constant time like [`Authenticator::check`]. `None` for unknown tokens and when auth is
    /// open (no tokens configured).
    pub fn identify(&self, token: &str) -> Option<(String, Role)> {
        let mut found: Option<(String, Role)> = None;
        for (name, role, secret) in &self.tokens {
            if constant_time_eq(token.trim().as_bytes(), secret) && found.is_none() {
                found = Some((name.clone(), *role));
            }
        }
        found
    }
}

/// Constant-time equality for equal-length inputs; unequal lengths compare as unequal after the
/// same amount of work on the presented value.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | ((a.len() ^ b.len()) >> 8) as u8;
    for (i, x) in a.iter().enumerate() {
        let y = b.get(i % b.len().max(1)).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    diff == 0 && a.len() == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Authenticator {
        Authenticator::from_config(&[
            TokenConfig {
                name: "producer".into(),
                role: Role::Ingest,
                token: Some("s3cret".into()),
                token_env: None,
            },
            TokenConfig {
                name: "ops".into(),
                role: Role::Operator,
                token: Some("op".into()),
                token_env: None,
            },
        ])
        .unwrap()
    }

    #[test]
    fn roles_and_tokens() {
        let a = auth();
        assert!(a.check(Some("Bearer s3cret"), Role::Ingest).is_ok());
        assert_eq!(a.check(None, Role::Ingest), Err(AuthError::Missing));
        assert_eq!(
            a.check(Some("Bearer s3cre"), Role::Ingest),
            Err(AuthError::Unknown)
        );
        assert_eq!(
            a.check(Some("Bearer s3cret!"), Role::Ingest),
            Err(AuthError::Unknown)
        );
        assert!(matches!(
            a.check(Some("Bearer op"), Role::Ingest),
            Err(AuthError::Forbidden { .. })
        ));
        assert!(a.check(Some("Bearer op"), Role::Viewer).is_ok());
        assert!(!format!("{a:?}").contains("s3cret"));
    }

    #[test]
    fn own_clients_present_a_token_that_passes() {
        let a = auth();
        let ingest = a.header_for(Role::Ingest).expect("an ingest token");
        assert!(a.check(Some(&ingest), Role::Ingest).is_ok());
        let viewer = a.header_for(Role::Viewer).expect("the operator token");
        assert_eq!(
            a.authorize(Some(&viewer), Role::Viewer).as_deref(),
            Ok("ops")
        );
        assert_eq!(a.header_for(Role::Admin), None);
        assert_eq!(Authenticator::open().header_for(Role::Ingest), None);
    }

    #[test]
    fn constant_time_eq_is_eq() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }
}
