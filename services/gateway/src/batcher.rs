//! Coalesces concurrent single-sale requests into `ProcesarVentas` calls.
//!
//! Each `POST /venta` hands its sale to the batcher and waits for its own
//! outcome. The batcher takes whatever is queued when it wakes (up to
//! `max_batch`, the producers' per-call limit) and sends it as one call, without waiting for more: at low
//! load a sale travels alone and at once, under load hundreds share one call,
//! which is what keeps the gateway's and producers' CPU per sale low. Calls
//! run concurrently. The producer reports an outcome per sale, so each
//! request is answered 202 only if its own sale was acknowledged.

use std::time::Duration;

use blackfriday_proto::pb::{ProductSaleBatchRequest, ProductSaleRequest, ProductSaleResponse};
use tokio::sync::{mpsc, oneshot};
use tonic::Status;

use crate::producers::ProducerPool;

type Reply = oneshot::Sender<Result<ProductSaleResponse, Status>>;

#[derive(Clone)]
pub struct Batcher {
    queue: mpsc::Sender<(ProductSaleRequest, Reply)>,
}

impl Batcher {
    pub fn start(pool: ProducerPool, max_batch: usize, timeout: Duration) -> Batcher {
        let (queue, mut waiting) =
            mpsc::channel::<(ProductSaleRequest, Reply)>(max_batch.max(1) * 8);
        tokio::spawn(async move {
            while let Some(first) = waiting.recv().await {
                let mut batch = vec![first];
                while batch.len() < max_batch {
                    match waiting.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                tokio::spawn(send(pool.clone(), batch, timeout));
            }
        });
        Batcher { queue }
    }

    /// Sends one sale (in some batch) and returns its own outcome.
    pub async fn submit(&self, sale: ProductSaleRequest) -> Result<ProductSaleResponse, Status> {
        let (reply, outcome) = oneshot::channel();
        self.queue
            .send((sale, reply))
            .await
            .map_err(|_| Status::unavailable("the gateway is shutting down"))?;
        outcome
            .await
            .map_err(|_| Status::unavailable("the batch carrying this sale was dropped"))?
    }
}

async fn send(pool: ProducerPool, batch: Vec<(ProductSaleRequest, Reply)>, timeout: Duration) {
    let (ventas, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
    let count = ventas.len();
    let mut client = pool.client();
    let outcome = tokio::time::timeout(
        timeout,
        client.procesar_ventas(ProductSaleBatchRequest { ventas }),
    )
    .await;
    let results: Vec<Result<ProductSaleResponse, Status>> = match outcome {
        Ok(Ok(response)) => {
            let resultados = response.into_inner().resultados;
            if resultados.len() == count {
                resultados
                    .into_iter()
                    .map(|r| {
                        if r.error.is_empty() {
                            Ok(r)
                        } else {
                            Err(Status::unavailable(r.error))
                        }
                    })
                    .collect()
            } else {
                let status = Status::internal(format!(
                    "producer answered {} results for {count} sales",
                    resultados.len()
                ));
                vec![Err(status); count]
            }
        }
        Ok(Err(status)) => vec![Err(status); count],
        Err(_) => vec![
            Err(Status::deadline_exceeded(format!(
                "no producer answered within {timeout:?}"
            )));
            count
        ],
    };
    for (reply, result) in replies.into_iter().zip(results) {
        // The request may have given up (client gone); nothing to do then.
        let _ = reply.send(result);
    }
}
