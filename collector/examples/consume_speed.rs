use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::time::{Duration, Instant};
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (topic, n): (&str, usize) = (&args[1], args[2].parse().unwrap());
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", "127.0.0.1:19092")
        .set("group.id", format!("speed-{}", std::process::id()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .create()
        .unwrap();
    c.subscribe(&[topic]).unwrap();
    let mut got = 0usize;
    let mut first: Option<Instant> = None;
    while got < n {
        if let Some(Ok(_m)) = c.poll(Duration::from_millis(100)) {
            first.get_or_insert_with(Instant::now);
            got += 1;
        }
    }
    println!("{:.0} msg/s after first", n as f64 / first.unwrap().elapsed().as_secs_f64());
}
