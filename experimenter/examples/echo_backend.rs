//! A minimal model backend for gateway benchmarks: answers every request with a fixed JSON
//! prediction naming its version. `cargo run --release -p vigil-experimenter --example
//! echo_backend -- PORT NAME [WORKERS]`.

use actix_web::{web, App, HttpResponse, HttpServer};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(18080);
    let name = args.next().unwrap_or_else(|| "v1".into());
    let workers: usize = args.next().and_then(|w| w.parse().ok()).unwrap_or(1);
    let body =
        format!("{{\"version\":\"{name}\",\"prediction\":{{\"score\":0.25,\"label\":\"a\"}}}}");
    HttpServer::new(move || {
        let body = body.clone();
        App::new().default_service(web::to(move |_: web::Bytes| {
            let body = body.clone();
            async move {
                HttpResponse::Ok()
                    .content_type("application/json")
                    .body(body)
            }
        }))
    })
    .workers(workers)
    .bind(("127.0.0.1", port))?
    .run()
    .await
}
