# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
