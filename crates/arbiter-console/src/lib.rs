//! The console's people, apart from HTTP: users per tenant with a role, passwords hashed with
//! argon2id, sessions (a random token in the person's cookie, only its SHA-256 stored), CSRF
//! tokens bound to a session, the sign-in throttle counted in the database (so it holds across
//! replicas), session expiry and sign-out. Sign-in, sign-out and refused sign-ins are audit
//! entries (`console.signed_in`, `console.signed_out`, `console.sign_in_failed`).
#![forbid(unsafe_code)]

pub mod config;
pub mod oidc;
pub mod pages;
pub mod password;
pub mod role;
pub mod sessions;
pub mod token;
pub mod users;

pub use role::{Area, Gate, Role, area};
pub use sessions::{NewSession, Session, SignInError, Throttle};
pub use users::{UserError, UserView};
