//! Whether output is coloured: one rule for the harness and `cargo prun`. The flag (`--color`)
//! first, then `CARGO_TERM_COLOR` (as cargo reads it), then `NO_COLOR`, then whether the output
//! is a terminal.

/// `--color`'s value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Choice {
    #[default]
    Auto,
    Always,
    Never,
}

/// Whether to colour output that goes to a terminal (`is_terminal`) or not.
pub fn enabled(choice: Choice, is_terminal: bool) -> bool {
    let env = |name: &str| std::env::var(name).ok();
    enabled_with(choice, is_terminal, &env)
}

fn enabled_with(choice: Choice, is_terminal: bool, env: &dyn Fn(&str) -> Option<String>) -> bool {
    let choice = match choice {
        Choice::Auto => match env("CARGO_TERM_COLOR").as_deref() {
            Some("always") => Choice::Always,
            Some("never") => Choice::Never,
            _ => Choice::Auto,
        },
        given => given,
    };
    match choice {
        Choice::Always => true,
        Choice::Never => false,
        Choice::Auto => is_terminal && env("NO_COLOR").is_none_or(|value| value.is_empty()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_then_cargo_term_color_then_no_color_then_the_terminal() {
        let none = |_: &str| None;
        assert!(enabled_with(Choice::Auto, true, &none));
        assert!(!enabled_with(Choice::Auto, false, &none));
        let no_color = |name: &str| (name == "NO_COLOR").then(|| "1".to_owned());
        assert!(!enabled_with(Choice::Auto, true, &no_color));
        assert!(enabled_with(Choice::Always, false, &no_color));
        let cargo_always = |name: &str| (name == "CARGO_TERM_COLOR").then(|| "always".to_owned());
        assert!(enabled_with(Choice::Auto, false, &cargo_always));
        assert!(!enabled_with(Choice::Never, true, &cargo_always), "the flag wins");
        let cargo_never = |name: &str| (name == "CARGO_TERM_COLOR").then(|| "never".to_owned());
        assert!(!enabled_with(Choice::Auto, true, &cargo_never));
    }
}
