#!/usr/bin/env bash
# Runs a command (mpirun, ompi_info) with OpenMPI set up for one machine:
# every byte between ranks stays inside it. Ranks talk through shared memory
# (btl self,vader; pml ob1, so UCX, which may pick a network card, is never
# used), and the TCP paths are restricted to the loopback interface: the
# out-of-band channel between mpirun and the ranks (oob_tcp_if_include) and
# the TCP transport should anyone add it to btl (btl_tcp_if_include).
# Also lets root run mpirun (CI's machine runs as root) and allows more ranks
# than cores. Used by make test-mpi, make bench-mpi and the README.
# Usage: tools/mpi_local.sh mpirun -np 2 build/mpi/gpt train ...
set -euo pipefail
export OMPI_MCA_pml=ob1
export OMPI_MCA_btl=self,vader
export OMPI_MCA_btl_tcp_if_include=lo
export OMPI_MCA_oob_tcp_if_include=lo
export OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
exec "$@"
