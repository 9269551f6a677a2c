//! [`LoginOptions`]: how [`Session::login_with`](crate::Session::login_with) signs a user in.

/// Options of [`Session::login_with`](crate::Session::login_with).
#[derive(Debug, Clone, Copy, Default)]
pub struct LoginOptions {
    pub(crate) remember_me: bool,
}

impl LoginOptions {
    /// A persistent ("remember me") cookie with the remember-me timeouts, instead of a cookie
    /// that ends with the browser session.
    ///
    /// # Examples
    ///
    /// ```
    /// let options = portcullis_session::LoginOptions::default().remember_me(true);
    /// ```
    ///
    /// # Security
    ///
    /// The session survives the browser being closed; offer it as an explicit choice.
    #[must_use]
    pub fn remember_me(mut self, remember: bool) -> Self {
        self.remember_me = remember;
        self
    }
}
