fn main() {
    println!("portcullis: under construction");
}
