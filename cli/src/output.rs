//! Where bfctl prints. Every line bfctl shows a person goes through the
//! macros and functions here (and the live progress in
//! [`crate::progress`]); the library computes and returns, it never
//! prints. A test (`cli/tests/module_graph.rs`, `only_output_and_progress_print`)
//! keeps it that way.
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
