terraform {
  required_version = ">= 1.5"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }

  # State holds generated secrets (database password, Redis AUTH string): keep it in a private,
  # versioned GCS bucket. Partial configuration:
  #   terraform init -backend-config="bucket=<state bucket>" -backend-config="prefix=quarry"
  backend "gcs" {}
}

provider "google" {
  project = var.project_id
  region  = var.region
}

data "google_project" "this" {
  project_id = var.project_id
}
