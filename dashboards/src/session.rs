//! Server-side sessions: a login with a role token creates a random session id (the cookie) and a
//! random CSRF token (in every form); both live only in this process's memory and expire.

use rand::RngCore;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use vigil_store::auth::Role;

/// Cookie name; the cookie is `HttpOnly; SameSite=Strict; Path=/ui`.
pub const COOKIE: &str = "vigil_session";

/// A signed-in user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub name: String,
    pub role: Role,
    pub csrf: String,
    expires: Instant,
}

/// All sessions of this process.
#[derive(Debug)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    ttl: Duration,
}

/// 32 random bytes from the OS-seeded CSPRNG, hex-encoded.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Session {
    /// The implicit session when auth is off (no `[auth]` tokens: a local demo).
    pub fn local(csrf: &str) -> Session {
        Session {
            name: "local".into(),
            role: Role::Admin,
            csrf: csrf.to_string(),
            expires: Instant::now() + Duration::from_secs(3600),
        }
    }
}

impl Sessions {
    pub fn new(ttl: Duration) -> Self {
        Sessions {
            map: Mutex::new(HashMap::new()),
            ttl,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // A panic while holding the lock cannot leave the map inconsistent (single inserts and
        // removes), so a poisoned lock is still usable.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Creates a session; returns its id (the cookie value).
    pub fn create(&self, name: &str, role: Role) -> (String, Session) {
        let id = random_token();
        let s = Session {
            name: name.to_string(),
            role,
            csrf: random_token(),
            expires: Instant::now() + self.ttl,
        };
        let mut map = self.lock();
        let now = Instant::now();
        map.retain(|_, v| v.expires > now);
        map.insert(id.clone(), s.clone());
        (id, s)
    }

    /// The live session with this id (sliding expiry).
    pub fn get(&self, id: &str) -> Option<Session> {
        let mut map = self.lock();
        let now = Instant::now();
        match map.get_mut(id) {
            Some(s) if s.expires > now => {
                s.expires = now + self.ttl;
                Some(s.clone())
            }
            Some(_) => {
                map.remove(id);
                None
            }
            None => None,
        }
    }

    pub fn remove(&self, id: &str) {
        self.lock().remove(id);
    }
}

/// Whether the CSRF token of a form matches the session's (constant time).
pub fn csrf_ok(session: &Session, presented: &str) -> bool {
    vigil_store::auth::constant_time_eq(presented.as_bytes(), session.csrf.as_bytes())
}

/// The `Set-Cookie` value for a session id (`max_age` 0 clears it).
pub fn cookie(id: &str, max_age: u64) -> String {
    format!("{COOKIE}={id}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={max_age}")
}

/// The session id in a `Cookie` header, if any.
pub fn cookie_value(header: &str) -> Option<&str> {
    header.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == COOKIE && !v.is_empty()).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_and_csrf_is_checked() {
        let s = Sessions::new(Duration::from_millis(50));
        let (id, sess) = s.create("ana", Role::Viewer);
        assert_eq!(id.len(), 64);
        assert_ne!(id, sess.csrf);
        assert_eq!(s.get(&id).map(|x| x.role), Some(Role::Viewer));
        assert!(csrf_ok(&sess, &sess.csrf.clone()));
        assert!(!csrf_ok(&sess, ""));
        assert!(!csrf_ok(&sess, &random_token()));
        std::thread::sleep(Duration::from_millis(80));
        assert!(s.get(&id).is_none());
        assert!(s.get("nope").is_none());
    }

    #[test]
    fn cookie_round_trip() {
        let c = cookie("abc", 3600);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Path=/ui"));
        assert_eq!(cookie_value("x=1; vigil_session=abc; y=2"), Some("abc"));
        assert_eq!(cookie_value("vigil_session="), None);
        assert_eq!(cookie_value("other=abc"), None);
    }
}
