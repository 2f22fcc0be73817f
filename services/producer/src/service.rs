//! The gRPC `ProductSaleService`: validate, write to Kafka, wait for the
//! delivery report, answer with where the sale landed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use blackfriday_proto::MAX_SALES_PER_CALL;
use blackfriday_proto::pb::product_sale_service_server::ProductSaleService;
use blackfriday_proto::pb::{
    ProductSaleBatchRequest, ProductSaleBatchResponse, ProductSaleRequest, ProductSaleResponse,
};
use blackfriday_proto::record::{Sale, encode_record};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use tonic::{Request, Response, Status};

use crate::metrics::Metrics;

pub struct SaleService {
    producer: Arc<FutureProducer>,
    topic: String,
    metrics: Metrics,
}

impl SaleService {
    pub fn new(producer: Arc<FutureProducer>, topic: String, metrics: Metrics) -> SaleService {
        SaleService {
            producer,
            topic,
            metrics,
        }
    }

    /// Hands one sale to librdkafka, waiting while its local queue is full.
    async fn enqueue(&self, sale: &ProductSaleRequest) -> Result<DeliveryFuture, Status> {
        let value = encode_record(sale);
        loop {
            // No key: librdkafka's sticky partitioner fills one partition per
            // batch and moves on, so load spreads evenly in bigger batches
            // (docs/kafka-records.md).
            let record = FutureRecord::<(), _>::to(&self.topic).payload(&value);
            match self.producer.send_result(record) {
                Ok(delivery) => return Ok(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((error, _)) => {
                    self.metrics.sales_failed.inc();
                    return Err(Status::unavailable(format!("enqueueing sale: {error}")));
                }
            }
        }
    }

    /// Waits for the broker's delivery report of one sale.
    async fn delivered(
        &self,
        venta_id: String,
        delivery: DeliveryFuture,
        started: Instant,
    ) -> Result<ProductSaleResponse, Status> {
        let report = delivery
            .await
            .map_err(|_| Status::unavailable("the Kafka producer shut down before delivery"))?;
        match report {
            Ok(landed) => {
                self.metrics.sales_acknowledged.inc();
                self.metrics
                    .delivery_seconds
                    .observe(started.elapsed().as_secs_f64());
                Ok(ProductSaleResponse {
                    venta_id,
                    partition: landed.partition,
                    offset: landed.offset,
                    error: String::new(),
                })
            }
            Err((error, _)) => {
                self.metrics.sales_failed.inc();
                tracing::warn!(%error, %venta_id, "Kafka did not acknowledge a sale");
                Err(Status::unavailable(format!(
                    "Kafka did not acknowledge sale {venta_id}: {error}"
                )))
            }
        }
    }
}

fn validate(sale: &ProductSaleRequest) -> Result<(), Status> {
    Sale::try_from(sale)
        .map(|_| ())
        .map_err(|invalid| Status::invalid_argument(invalid.to_string()))
}

#[tonic::async_trait]
impl ProductSaleService for SaleService {
    async fn procesar_venta(
        &self,
        request: Request<ProductSaleRequest>,
    ) -> Result<Response<ProductSaleResponse>, Status> {
        let sale = request.into_inner();
        validate(&sale)?;
        let started = Instant::now();
        let delivery = self.enqueue(&sale).await?;
        let response = self.delivered(sale.venta_id, delivery, started).await?;
        Ok(Response::new(response))
    }

    async fn procesar_ventas(
        &self,
        request: Request<ProductSaleBatchRequest>,
    ) -> Result<Response<ProductSaleBatchResponse>, Status> {
        let batch = request.into_inner().ventas;
        if batch.len() > MAX_SALES_PER_CALL {
            return Err(Status::invalid_argument(format!(
                "ventas: at most {MAX_SALES_PER_CALL} sales per call, got {}",
                batch.len()
            )));
        }
        for (index, sale) in batch.iter().enumerate() {
            validate(sale).map_err(|status| {
                Status::invalid_argument(format!("ventas[{index}].{}", status.message()))
            })?;
        }
        // Enqueue everything first so librdkafka can batch, then collect the
        // reports. Each sale gets its own outcome: one failure must not hide
        // that the others were written.
        let started = Instant::now();
        let mut pending = Vec::with_capacity(batch.len());
        for sale in batch {
            let delivery = self.enqueue(&sale).await;
            pending.push((sale.venta_id, delivery));
        }
        let mut resultados = Vec::with_capacity(pending.len());
        for (venta_id, delivery) in pending {
            let outcome = match delivery {
                Ok(delivery) => self.delivered(venta_id.clone(), delivery, started).await,
                Err(status) => Err(status),
            };
            resultados.push(outcome.unwrap_or_else(|status| ProductSaleResponse {
                venta_id,
                error: status.message().to_string(),
                ..ProductSaleResponse::default()
            }));
        }
        Ok(Response::new(ProductSaleBatchResponse { resultados }))
    }
}
