//! Who is calling: bearer JWTs signed by this deployment or console session cookies, and the
//! role checks built on them.
//!
//! The server and `socmate token issue` share one [`JwtKeys`], so a token minted on the command
//! line is verified by exactly the rules the server applies.

mod jwt;
mod middleware;

pub use jwt::{AuthError, Claims, JwtKeyError, JwtKeys, Role, parse_ttl};
pub use middleware::{AuthState, AuthUser, authenticate, require_admin};
