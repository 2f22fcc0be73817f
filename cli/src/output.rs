//! Where bfctl prints. Every line bfctl shows a person goes through the
//! macros and functions here (and the live progress in
//! [`crate::progress`]); the library computes and returns, it never
//! prints. A unit test here (`nothing_else_prints`) keeps it that way.
//!
//! * results go to stdout (`out!`), as text or as JSON (`--output json`);
//! * notes, warnings and errors go to stderr (`note!`);
//! * `-v` API traces go to stderr ([`api_tracer`]).

/// A line of the command's result, on stdout.
#[macro_export]
macro_rules! out {
    () => { ::std::println!() };
    ($($arg:tt)*) => { ::std::println!($($arg)*) };
}

/// Text on stdout without a newline (a prompt).
#[macro_export]
macro_rules! out_partial {
    ($($arg:tt)*) => {{
        ::std::print!($($arg)*);
        let _ = ::std::io::Write::flush(&mut ::std::io::stdout());
    }};
}

/// Text on stderr without a newline (a question).
#[macro_export]
macro_rules! note_partial {
    ($($arg:tt)*) => {{
        ::std::eprint!($($arg)*);
        let _ = ::std::io::Write::flush(&mut ::std::io::stderr());
    }};
}

/// A note, warning or error for the person, on stderr.
#[macro_export]
macro_rules! note {
    () => { ::std::eprintln!() };
    ($($arg:tt)*) => { ::std::eprintln!($($arg)*) };
}

/// The last words of a failed command.
pub fn error(error: &anyhow::Error) {
    note!("bfctl: {error:#}");
}

/// Prints every API call (`-v`).
pub fn api_tracer() -> kube_apply::Tracer {
    std::sync::Arc::new(|call: &str| note!("  api: {call}"))
}

/// What the first Ctrl-C says.
pub fn interrupt_notice() {
    note!(
        "\ninterrupt: finishing the requests in flight, starting nothing new (Ctrl-C again to quit at once)"
    );
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Only this file and the progress display print.
    #[test]
    fn nothing_else_prints() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut offenders = Vec::new();
        let mut stack = vec![src.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let relative = path
                    .strip_prefix(&src)
                    .unwrap()
                    .to_string_lossy()
                    .to_string();
                if relative == "output.rs" || relative == "progress.rs" {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                for (number, line) in text.lines().enumerate() {
                    let code = line.split("//").next().unwrap_or("");
                    if ["println!", "eprintln!", "print!(", "eprint!("]
                        .iter()
                        .any(|m| code.contains(m))
                    {
                        offenders.push(format!("{relative}:{}: {}", number + 1, line.trim()));
                    }
                }
            }
        }
        assert!(
            offenders.is_empty(),
            "print through output.rs instead:\n{}",
            offenders.join("\n")
        );
    }
}
