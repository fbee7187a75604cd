//! Counts in messages: "1 integration", "2 integrations", "0 warnings", never "1 integrations"
//! or "warning(s)". For the log lines, the command output and the systemd status alike.

use std::fmt;

/// `n` and the noun, in the plural unless `n` is 1. The plural adds an `s`, which is right for
/// every noun counted here (integration, rotation, token, check, warning); a noun that needs
/// another plural wants a second argument, not a special case here.
pub fn count(n: usize, noun: &'static str) -> Count {
    Count { n, noun }
}

/// What [`count`] returns: formats without allocating, for log fields and `format!` alike.
#[derive(Clone, Copy, Debug)]
pub struct Count {
    n: usize,
    noun: &'static str,
}

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = if self.n == 1 { "" } else { "s" };
        write!(f, "{} {}{s}", self.n, self.noun)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_is_singular_and_every_other_count_plural() {
        assert_eq!(count(0, "warning").to_string(), "0 warnings");
        assert_eq!(count(1, "integration").to_string(), "1 integration");
        assert_eq!(count(2, "check").to_string(), "2 checks");
        assert_eq!(count(10_000, "rotation").to_string(), "10000 rotations");
    }
}
