//! The `feature` case's child built without litedal's `postgres` feature; it runs the same
//! work as the benchmark's own child (`benches/support/feature_cost.rs`).

#[path = "../../support/feature_cost.rs"]
mod feature_cost;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.split_first() {
        Some((flag, rest)) if flag == feature_cost::CHILD_FLAG => feature_cost::child(rest),
        _ => Err(format!(
            "run by `cargo bench --bench throughput -- --only feature`; usage: {} <reads|list|bulk> <database> <count>",
            feature_cost::CHILD_FLAG
        )
        .into()),
    }
}
