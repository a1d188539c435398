//! The HTTP API's request and response types (bodies, query parameters, answers), one module
//! per resource, apart from the handlers that take and give them. Each derives its OpenAPI
//! schema, and states there the rules the API enforces on it. The audit routes' queries and
//! pages are `arbiter_audit::query`'s, and the review page is the engine's.

pub mod policies;
pub mod review;
pub mod trail;
pub mod webhooks;
