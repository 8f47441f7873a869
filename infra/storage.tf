# Uploads: documents dropped here are ingested (eventarc.tf). Regional, in the trigger's region.
resource "google_storage_bucket" "uploads" {
  name                        = var.uploads_bucket_name != "" ? var.uploads_bucket_name : "${var.project_id}-${var.name_prefix}-uploads"
  location                    = upper(var.region)
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }

  # Keep a few superseded versions of each document, not all of them forever.
  lifecycle_rule {
    condition {
      num_newer_versions = var.uploads_noncurrent_versions
      with_state         = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  labels = { app = var.name_prefix }

  depends_on = [google_project_service.apis]
}

# Where `gcloud builds submit --gcs-source-staging-dir` puts the source tarballs for the deployer.
resource "google_storage_bucket" "build_sources" {
  name                        = "${var.project_id}-${var.name_prefix}-build-sources"
  location                    = upper(var.region)
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true

  lifecycle_rule {
    condition {
      age = 14
    }
    action {
      type = "Delete"
    }
  }

  labels = { app = var.name_prefix }

  depends_on = [google_project_service.apis]
}
