# Nightly: POST /v1/advice/run on index-advisor, authenticated by Cloud Run IAM with an OIDC token
# of the scheduler's service account (the only account allowed to invoke it, iam.tf).
resource "google_cloud_scheduler_job" "advice" {
  name             = "${var.name_prefix}-index-advice"
  description      = "Runs the index advisor over pg_stat_statements."
  region           = var.region
  schedule         = var.advice_schedule
  time_zone        = var.advice_time_zone
  attempt_deadline = "900s"

  retry_config {
    retry_count          = 1
    min_backoff_duration = "60s"
  }

  http_target {
    http_method = "POST"
    uri         = "${google_cloud_run_v2_service.fn["index-advisor"].uri}/v1/advice/run"
    headers     = { "Content-Type" = "application/json" }
    body        = base64encode("{}")

    oidc_token {
      service_account_email = google_service_account.scheduler.email
      audience              = google_cloud_run_v2_service.fn["index-advisor"].uri
    }
  }

  depends_on = [google_cloud_run_v2_service_iam_member.scheduler_invokes_advisor]
}
