//! The `segwatch` binary: everything lives in the library; see `segwatch::cli`.

fn main() -> std::process::ExitCode {
    segwatch::cli::run()
}
