//! [`QuipuTable`]: one quipu table as a DataFusion `TableProvider`, and the
//! pushdown of its filters (time comparisons to the scan's range, tag
//! equalities to its tag filter).

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::stats::Precision;
use datafusion::common::{ScalarValue, Statistics};
use datafusion::datasource::TableType;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;

use super::scan::ScanExec;
use super::telemetry::QueryTelemetry;
use crate::catalog::{ColumnKind, TIME_COLUMN};
use crate::error::{Error, Result};
use crate::query::{self, Plan};
use crate::time_range::TimeRange;
use crate::{Engine, ScanRequest};

/// One quipu table as a DataFusion table.
#[derive(Debug)]
pub struct QuipuTable {
    pub(super) engine: Engine,
    pub(super) db: String,
    pub(super) table: String,
    db_id: u32,
    table_id: u32,
    schema: SchemaRef,
    /// Tag column names: the columns an equality filter can be pushed on.
    tags: Vec<String>,
    /// Where the scans of this table report what they read.
    pub(super) telemetry: Option<Arc<QueryTelemetry>>,
}

impl QuipuTable {
    /// The table `db`.`table` of `engine`, with the columns the catalog
    /// knows now. [`Error::DatabaseNotFound`] / [`Error::TableNotFound`].
    pub fn new(engine: &Engine, db: &str, table: &str) -> Result<QuipuTable> {
        let catalog = engine.catalog();
        let database = catalog.database(db).ok_or_else(|| Error::DatabaseNotFound { db: db.to_string() })?;
        let def = database
            .table(table)
            .ok_or_else(|| Error::TableNotFound { db: db.to_string(), table: table.to_string() })?;
        let plan = Plan::new(db, def, &ScanRequest::all())?;
        let tags = def.columns.iter().filter(|c| c.kind == ColumnKind::Tag).map(|c| c.name.clone()).collect();
        Ok(QuipuTable {
            engine: engine.clone(),
            db: db.to_string(),
            table: table.to_string(),
            db_id: database.id,
            table_id: def.id,
            schema: query::schema(&plan, def),
            tags,
            telemetry: None,
        })
    }

    /// Reports every scan of this table to `telemetry`.
    #[must_use]
    pub fn with_telemetry(mut self, telemetry: Arc<QueryTelemetry>) -> QuipuTable {
        self.telemetry = Some(telemetry);
        self
    }

    /// Row count and time bounds of the files a scan of `req` reads, from
    /// their metadata. Inexact: rows still in the write buffer are not
    /// counted, a row rewritten in a newer file is counted twice, and
    /// rows outside the range within a file are counted.
    fn statistics(&self, req: &ScanRequest) -> Statistics {
        let range = req.time_range.unwrap_or(TimeRange::ALL);
        let version = self.engine.version();
        let files: Vec<_> = version
            .table_files(self.db_id, self.table_id)
            .into_iter()
            .filter(|f| range.overlaps(f.meta.time_min, f.meta.time_max))
            .collect();
        let rows: u64 = files.iter().map(|f| f.meta.rows).sum();
        let bytes: u64 = files.iter().map(|f| f.meta.size).sum();
        let mut stats = Statistics::new_unknown(&self.schema);
        stats.num_rows = Precision::Inexact(rows as usize);
        stats.total_byte_size = Precision::Inexact(bytes as usize);
        if let (Some(lo), Some(hi), Ok(i)) = (
            files.iter().map(|f| f.meta.time_min.max(range.min())).min(),
            files.iter().map(|f| f.meta.time_max.min(range.max())).max(),
            self.schema.index_of(TIME_COLUMN),
        ) && lo <= hi
        {
            let column = &mut stats.column_statistics[i];
            column.min_value = Precision::Inexact(ScalarValue::TimestampNanosecond(Some(lo), None));
            column.max_value = Precision::Inexact(ScalarValue::TimestampNanosecond(Some(hi), None));
            column.null_count = Precision::Exact(0);
        }
        stats
    }

    /// The scan request `filters` allow: a time range and tag equalities.
    fn scan_request(&self, filters: &[Expr]) -> ScanRequest {
        let mut req = ScanRequest::all();
        let mut range = TimeRange::ALL;
        for filter in filters {
            for conjunct in split_and(filter) {
                if let Some(bounds) = time_bounds(conjunct) {
                    range = range.intersect(bounds);
                } else if let Some((tag, value)) = self.tag_equality(conjunct) {
                    req = req.tag_eq(tag, value);
                }
            }
        }
        if !range.is_all() {
            req.time_range = Some(range);
        }
        req
    }

    fn tag_equality(&self, expr: &Expr) -> Option<(String, String)> {
        let Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) = expr else { return None };
        let (column, value) = match (column_name(left), column_name(right)) {
            (Some(c), None) => (c, string_literal(right)?),
            (None, Some(c)) => (c, string_literal(left)?),
            _ => return None,
        };
        self.tags.contains(&column).then_some((column, value))
    }

    fn pushable(&self, expr: &Expr) -> bool {
        split_and(expr).iter().all(|c| time_bounds(c).is_some() || self.tag_equality(c).is_some())
    }
}

#[async_trait]
impl TableProvider for QuipuTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if self.pushable(f) {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let indices: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let projected = Arc::new(self.schema.project(&indices)?);
        let mut req = self.scan_request(filters);
        // The scan always returns `time`; other columns only when asked.
        let columns: Vec<String> =
            projected.fields().iter().map(|f| f.name().clone()).filter(|n| n != TIME_COLUMN).collect();
        // SQL sees every row of the table, also one whose selected fields
        // are all null.
        req = req.columns(columns).keep_null_rows();
        let statistics = self.statistics(&req).project(Some(&indices));
        // A limit is met soonest by one reader in order.
        let partitions = if limit.is_some() { 1 } else { state.config().target_partitions().max(1) };
        Ok(Arc::new(ScanExec::new(self, req, projected, limit, Arc::new(statistics), partitions)))
    }
}

/// The conjuncts of `expr` (`a AND b AND c` -> `[a, b, c]`).
pub(super) fn split_and(expr: &Expr) -> Vec<&Expr> {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::And, right }) => {
            let mut out = split_and(left);
            out.extend(split_and(right));
            out
        }
        other => vec![other],
    }
}

pub(super) fn column_name(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Column(c) => Some(c.name.clone()),
        Expr::Cast(c) => column_name(&c.expr),
        Expr::TryCast(c) => column_name(&c.expr),
        _ => None,
    }
}

pub(super) fn string_literal(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Literal(v, _) => scalar_string(v),
        Expr::Cast(c) => string_literal(&c.expr),
        _ => None,
    }
}

pub(super) fn scalar_string(v: &ScalarValue) -> Option<String> {
    match v {
        ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => {
            Some(s.clone())
        }
        ScalarValue::Dictionary(_, inner) => scalar_string(inner),
        _ => None,
    }
}

/// A timestamp literal in ns.
pub(super) fn time_literal(expr: &Expr) -> Option<i64> {
    let Expr::Literal(v, _) = expr else {
        return match expr {
            Expr::Cast(c) => time_literal(&c.expr),
            _ => None,
        };
    };
    match v {
        ScalarValue::TimestampNanosecond(Some(t), _) => Some(*t),
        ScalarValue::TimestampMicrosecond(Some(t), _) => t.checked_mul(1_000),
        ScalarValue::TimestampMillisecond(Some(t), _) => t.checked_mul(1_000_000),
        ScalarValue::TimestampSecond(Some(t), _) => t.checked_mul(1_000_000_000),
        _ => None,
    }
}

/// The ns range a comparison of `time` with a literal allows.
pub(super) fn time_bounds(expr: &Expr) -> Option<TimeRange> {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (op, t) = match (column_name(left).as_deref(), column_name(right).as_deref()) {
                (Some(TIME_COLUMN), None) => (*op, time_literal(right)?),
                (None, Some(TIME_COLUMN)) => (op.swap()?, time_literal(left)?),
                _ => return None,
            };
            match op {
                Operator::Gt => Some(t.checked_add(1).map_or(TimeRange::EMPTY, TimeRange::from)),
                Operator::GtEq => Some(TimeRange::from(t)),
                Operator::Lt => Some(t.checked_sub(1).map_or(TimeRange::EMPTY, TimeRange::until)),
                Operator::LtEq => Some(TimeRange::until(t)),
                Operator::Eq => Some(TimeRange::inclusive(t, t)),
                _ => None,
            }
        }
        Expr::Between(Between { expr, negated: false, low, high })
            if column_name(expr).as_deref() == Some(TIME_COLUMN) =>
        {
            Some(TimeRange::inclusive(time_literal(low)?, time_literal(high)?))
        }
        _ => None,
    }
}
