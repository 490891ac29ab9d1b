"""The exporter's metric surface (DESIGN §3 and its self-metrics), shared by the rule and dashboard tests."""

EXPORTER_METRICS = frozenset(
    {
        "dora_deployments_total",
        "dora_deployment_failures_total",
        "dora_changes_total",
        "dora_lead_time_seconds_bucket",
        "dora_lead_time_seconds_count",
        "dora_lead_time_seconds_sum",
        "dora_time_to_restore_seconds_bucket",
        "dora_time_to_restore_seconds_count",
        "dora_time_to_restore_seconds_sum",
        "dora_deployment_frequency_per_day",
        "dora_lead_time_median_seconds",
        "dora_change_failure_ratio",
        "dora_time_to_restore_median_seconds",
        "dora_rework_ratio",
        "dora_performance_level",
        "dora_last_deployment_timestamp_seconds",
        "dora_sync_failing",
        "dora_degraded",
        "dora_failure_open",
        "dora_exporter_source_up",
        "dora_exporter_source_last_success_timestamp_seconds",
        "dora_exporter_source_errors_total",
        "dora_exporter_unmatched_total",
        "dora_exporter_build_info",
        "dora_exporter_github_rate_limit_remaining",
        "dora_exporter_changes_without_pull_request_total",
        "dora_exporter_scrape_duration_seconds",
        "dora_exporter_ingest_duration_seconds",
    }
)
