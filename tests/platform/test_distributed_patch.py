# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""P2: verl's global process group comes up on plain gloo."""

from __future__ import annotations

import inspect

from .conftest import run_python


def test_p2_upstream_backend_string_is_rejected_by_torch(plugin_active):
    import verl.utils.distributed as dist_mod

    from atropos_verl.platform.distributed import _MARK

    original = getattr(dist_mod.initialize_global_process_group_ray, _MARK)
    assert 'f"cpu:gloo,{get_device_name()}:{get_nccl_backend()}"' in inspect.getsource(original)
    out = run_python(
        "import torch.distributed as d\n"
        "try:\n"
        "    d.init_process_group(backend='cpu:gloo,cpu:gloo', store=d.HashStore(), rank=0, world_size=1)\n"
        "    print('accepted')\n"
        "except ValueError as e:\n"
        "    print('rejected' if 'Duplicate device type cpu' in str(e) else repr(e))"
    )
    assert out == "rejected"


def test_p2_patched_functions_init_gloo_everywhere_they_are_imported():
    out = run_python(
        "import os\n"
        "os.environ.update(RANK='0', WORLD_SIZE='1', LOCAL_RANK='0', MASTER_ADDR='127.0.0.1', MASTER_PORT='29533')\n"
        "import verl, torch.distributed as d\n"
        "import verl.utils.distributed as vd, verl.checkpoint_engine.base as cb\n"
        "assert cb.initialize_global_process_group_ray is vd.initialize_global_process_group_ray\n"
        "vd.initialize_global_process_group_ray(timeout_second=60)\n"
        "print(d.get_backend(), d.get_world_size())\n"
        "d.destroy_process_group()"
    )
    assert out == "gloo 1"
