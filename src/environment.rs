//! The one place the tool reads the process environment (clippy denies
//! `std::env::var` everywhere else). The library takes the environment as a
//! function ([`Env`]), so tests and the demo pass their own;
//! the commands pass [`var`].

/// The environment as the library takes it: a variable's value, None when unset.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// A variable of the process environment; None when unset or not Unicode.
#[allow(clippy::disallowed_methods)]
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Whether a variable is set to something (`NO_COLOR`'s rule), whatever
/// its encoding.
#[allow(clippy::disallowed_methods)]
pub fn is_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}
