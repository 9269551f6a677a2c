//! Authorization policies: a question asked of the application's user (`is this an admin?`),
//! usable in handler signatures ([`Authorized`](crate::Authorized)) and as a guard layer
//! ([`RequireLayer`](crate::RequireLayer)), and composable with [`PolicyExt`].

/// Decides whether a user may proceed.
///
/// Any `Fn(&U) -> bool` is a policy; a unit struct implementing it (and `Default`) can also
/// appear in a handler's signature as `Authorized<User, IsAdmin>`.
///
/// # Examples
///
/// ```
/// use portcullis_core::{Policy, PolicyExt};
///
/// #[derive(Clone)]
/// struct User { role: &'static str, banned: bool }
///
/// #[derive(Default)]
/// struct IsAdmin;
/// impl Policy<User> for IsAdmin {
///     fn allows(&self, user: &User) -> bool { user.role == "admin" }
/// }
///
/// let not_banned = |user: &User| !user.banned;
/// let policy = IsAdmin.and(not_banned);
/// assert!(policy.allows(&User { role: "admin", banned: false }));
/// assert!(!policy.allows(&User { role: "admin", banned: true }));
/// assert!(IsAdmin.not().allows(&User { role: "advertiser", banned: false }));
/// ```
pub trait Policy<U: ?Sized>: Send + Sync + 'static {
    /// Whether `user` may proceed.
    fn allows(&self, user: &U) -> bool;
}

impl<U: ?Sized, F> Policy<U> for F
where
    F: Fn(&U) -> bool + Send + Sync + 'static,
{
    fn allows(&self, user: &U) -> bool {
        self(user)
    }
}

/// Admits every authenticated user: "signed in" is the only requirement.
#[derive(Debug, Clone, Copy, Default)]
pub struct Authenticated;

impl<U: ?Sized> Policy<U> for Authenticated {
    fn allows(&self, _: &U) -> bool {
        true
    }
}

/// Admits a user only if both policies do.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllOf<A, B>(pub A, pub B);

impl<U: ?Sized, A: Policy<U>, B: Policy<U>> Policy<U> for AllOf<A, B> {
    fn allows(&self, user: &U) -> bool {
        self.0.allows(user) && self.1.allows(user)
    }
}

/// Admits a user if either policy does.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnyOf<A, B>(pub A, pub B);

impl<U: ?Sized, A: Policy<U>, B: Policy<U>> Policy<U> for AnyOf<A, B> {
    fn allows(&self, user: &U) -> bool {
        self.0.allows(user) || self.1.allows(user)
    }
}

/// Admits a user exactly when the inner policy refuses them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Not<A>(pub A);

impl<U: ?Sized, A: Policy<U>> Policy<U> for Not<A> {
    fn allows(&self, user: &U) -> bool {
        !self.0.allows(user)
    }
}

/// Combinators for every policy.
pub trait PolicyExt<U: ?Sized>: Policy<U> + Sized {
    /// Both this policy and `other`.
    fn and<P: Policy<U>>(self, other: P) -> AllOf<Self, P> {
        AllOf(self, other)
    }

    /// This policy or `other`.
    fn or<P: Policy<U>>(self, other: P) -> AnyOf<Self, P> {
        AnyOf(self, other)
    }

    /// The opposite of this policy.
    fn not(self) -> Not<Self> {
        Not(self)
    }
}

impl<U: ?Sized, P: Policy<U>> PolicyExt<U> for P {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Even;
    impl Policy<u32> for Even {
        fn allows(&self, n: &u32) -> bool {
            n.is_multiple_of(2)
        }
    }

    #[test]
    fn combinators_truth_table() {
        let big = |n: &u32| *n > 10;
        let cases = [
            (4u32, true, false, true, false),
            (12, true, true, true, false),
            (3, false, false, false, true),
            (13, false, false, true, true),
        ];
        for (n, even, both, either, odd) in cases {
            assert_eq!(Even.allows(&n), even, "{n}");
            assert_eq!(Even.and(big).allows(&n), both, "{n}");
            assert_eq!(Even.or(big).allows(&n), either, "{n}");
            assert_eq!(Even.not().allows(&n), odd, "{n}");
        }
        assert!(Authenticated.allows(&0u32));
    }
}
