fn main() {
    std::process::exit(flotilla::cli::run());
}
