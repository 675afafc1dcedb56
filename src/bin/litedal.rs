//! `litedal`: the operator CLI (see [`litedal::cli`]). Install it with
//! `cargo install --path . --features cli`.

fn main() -> std::process::ExitCode {
    litedal::cli::run(None)
}
