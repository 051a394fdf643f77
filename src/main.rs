/// The front end allocates and frees many small values (tree nodes, environments,
/// evaluated records); mimalloc serves them several times faster than the system
/// allocator (see BENCHMARKS.md, "Front end").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(flotilla::cli::run());
}
