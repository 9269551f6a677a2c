//! The three ways to run the board. Each mode adds its sign-in routes and its layer around the
//! same [`ads::routes`](crate::ads::routes) and [`me`](crate::me).

pub mod hybrid;
pub mod jwt;
pub mod session;
