"""Large-scale vehicle-to-vehicle (sidelink) channel of 3GPP TR 37.885 section 6.2.1: path loss,
NLOSv vehicle-blockage loss, shadow-fading parameters and the LOS / NLOSv / NLOS state
probabilities, plus a sidelink link budget. The cellular model (cosim/radio/pathloss.py, TR 38.901)
is for vehicle-to-base-station links; a link between two vehicles at 1.5 m has its own formulas,
and a third state, NLOSv, where another vehicle blocks the direct path.

Pure, numpy-vectorised, no randomness: the random parts (state draw, blockage loss, shadowing) take
their uniform or standard-normal draws as arguments.

Units: distances and heights in metres, carrier frequency in GHz, losses and gains in dB.

Sources and the choices made where they are silent or disagree:

* Path loss, TR 37.885 Table 6.2.1-1; checked against ns-3
  (src/propagation/model/three-gpp-v2v-propagation-loss-model.cc) and its test vectors
  (src/propagation/test/three-gpp-propagation-loss-model-test-suite.cc). NLOSv uses the LOS
  formula plus the blockage loss. Highway NLOS uses the urban NLOS formula, as ns-3 does: its
  highway class inherits the urban NLOS law. In the standard's highway scenario there are no
  buildings, so NLOS does not happen there; the formula only matters when the caller's geometry
  says a building blocks a highway link.
* Minimum distance: Table 6.2.1-1 gives no lower bound, and ns-3 uses the raw 3D distance (its
  loss goes to -inf as d -> 0). Here d3D is clamped at MIN_D3D_M = 3 m, the rule of TR 36.885
  Table A.1.4-1 (the LTE-V2X evaluation that came before) as the 36.885-based C-V2X models
  apply it. This changes nothing from 3 m up, so the ns-3 test vectors, which start at 10 m,
  are unaffected.
* Blockage loss, TR 37.885 section 6.2.1: max(0 dB, X) with X of mean mu and standard deviation
  sigma in dB, which depend on the antenna heights compared with the blocker's height. Here X is
  Gaussian in dB (the way 3GPP uses "log-normal" for shadowing). ns-3 instead draws X from a
  log-normal distribution in dB whose mean and standard deviation match mu and sigma, so for ns-3
  X is always positive. Older ns-3 releases built that log-normal with log10 in place of ln. The
  mean and the standard deviation are the same either way; only the shape differs.
* The state split: see v2v_state_probabilities.
"""

from __future__ import annotations

import numpy as np

from cosim.radio.pathloss import thermal_noise_dbm

ENVIRONMENTS = ("highway", "urban")

# Link states, as ints so that arrays of them broadcast (the order of ns-3's LosConditionValue).
LOS = 0
NLOSV = 1  # the direct path is blocked by another vehicle
NLOS = 2  # the direct path is blocked by buildings

MIN_D3D_M = 3.0  # distance floor; Table 6.2.1-1 has none, TR 36.885 Table A.1.4-1 uses 3 m (see above)

# Table 6.2.1-1: shadow-fading standard deviation (dB), indexed by state (LOS, NLOSv, NLOS).
# LOS and NLOSv 3 dB, NLOS 4 dB, as in ns-3's GetShadowingStd (its highway class inherits the
# urban values, so highway NLOS is 4 dB as well).
SHADOW_SIGMA_DB = {"highway": (3.0, 3.0, 4.0), "urban": (3.0, 3.0, 4.0)}
# Table 6.2.3-1: shadow-fading decorrelation distance (m), (LOS, NLOSv, NLOS); ns-3's
# GetShadowingCorrelationDistance, and QuaDRiGa's 3GPP_37.885_* configs give the same values.
# TR 36.885 Table A.1.4-1 (LTE-V2X) used 10 m urban and 25 m freeway instead.
SHADOW_DCOR_M = {"highway": (10.0, 13.0, 13.0), "urban": (10.0, 13.0, 13.0)}

# NLOSv blockage (section 6.2.1): the mean is base + max(0, 15 log10(d) - 41) dB.
BLOCKAGE_TALL_MU_DB, BLOCKAGE_TALL_SIGMA_DB = 9.0, 4.5  # blocker above both antennas
BLOCKAGE_PARTIAL_MU_DB, BLOCKAGE_PARTIAL_SIGMA_DB = 5.0, 4.0  # any other case except the next
# When both antennas are above the blocker, the loss is 0 dB.
# Blocker heights ns-3 uses: 1.6 m for vehicle types 1 and 2 (cars), 3 m for type 3 (trucks, buses).
BLOCKER_HEIGHT_CAR_M = 1.6
BLOCKER_HEIGHT_TRUCK_M = 3.0

# Evaluation assumptions (TR 37.885 section 6.1, and TR 36.885 Annex A before it), used as
# defaults: the ITS band at 5.9 GHz (the TRs evaluate at 6 GHz as a stand-in for it), 10 or 20 MHz
# channels, 23 dBm UE power, 3 dBi per vehicle antenna, 9 dB UE noise figure, antennas at 1.5 m.
ITS_FC_GHZ = 5.9
TX_POWER_DBM = 23.0
ANTENNA_GAIN_DBI = 3.0
NOISE_FIGURE_DB = 9.0
ANTENNA_HEIGHT_M = 1.5


def _check_environment(environment: str) -> None:
    if environment not in ENVIRONMENTS:
        raise ValueError(f"unknown environment {environment!r} (expected 'highway' or 'urban')")


def _check_state(state) -> np.ndarray:
    s = np.asarray(state)
    if not np.issubdtype(s.dtype, np.integer) or np.any((s < LOS) | (s > NLOS)):
        raise ValueError("state must be LOS (0), NLOSV (1) or NLOS (2)")
    return s


def v2v_path_loss_db(environment: str, state, d3d_m, fc_ghz):
    """Table 6.2.1-1 path loss between two vehicles, before blockage loss and shadowing.

    ``state`` is LOS, NLOSV or NLOS, a scalar or an int array. LOS and NLOSv share one formula:
    highway 32.4 + 20 log10(d) + 20 log10(fc), urban 38.77 + 16.7 log10(d) + 18.2 log10(fc). Add
    nlosv_blockage_db for NLOSv links. NLOS, in either environment, is
    36.85 + 30 log10(d) + 18.9 log10(fc). ``d3d_m`` is clamped at MIN_D3D_M. Broadcasts over the
    array arguments and keeps their float dtype.
    """
    _check_environment(environment)
    s = _check_state(state)
    d = np.maximum(np.asarray(d3d_m), MIN_D3D_M)
    log_d = np.log10(d)
    log_fc = np.log10(fc_ghz)
    if environment == "highway":
        pl_los = 32.4 + 20.0 * log_d + 20.0 * log_fc
    else:
        pl_los = 38.77 + 16.7 * log_d + 18.2 * log_fc
    pl_nlos = 36.85 + 30.0 * log_d + 18.9 * log_fc
    return np.where(s == NLOS, pl_nlos, pl_los).astype(pl_los.dtype, copy=False)


def nlosv_blockage_db(standard_normal, d3d_m, h_tx_m, h_rx_m, h_blocker_m):
    """Extra loss (dB, never negative) when a vehicle blocks an NLOSv link (section 6.2.1).

    Three cases, set by the antenna heights compared with the blocker's height:
    both antennas above it: 0 dB; both below it: max(0, 9 + a + 4.5 z); otherwise
    max(0, 5 + a + 4 z). Here a = max(0, 15 log10(d3D) - 41), which is zero up to d = 544 m,
    and z is ``standard_normal``. The standard picks the blocker's height at random from the
    vehicle types in the scenario (ns-3 uses BLOCKER_HEIGHT_CAR_M or BLOCKER_HEIGHT_TRUCK_M).
    All arguments broadcast.
    """
    z = np.asarray(standard_normal)
    d = np.maximum(np.asarray(d3d_m), MIN_D3D_M)
    h_lo = np.minimum(h_tx_m, h_rx_m)
    h_hi = np.maximum(h_tx_m, h_rx_m)
    h_b = np.asarray(h_blocker_m)
    extra = np.maximum(0.0, 15.0 * np.log10(d) - 41.0)
    tall = h_hi < h_b
    mu = np.where(tall, BLOCKAGE_TALL_MU_DB, BLOCKAGE_PARTIAL_MU_DB) + extra
    sigma = np.where(tall, BLOCKAGE_TALL_SIGMA_DB, BLOCKAGE_PARTIAL_SIGMA_DB)
    loss = np.maximum(0.0, mu + sigma * z)
    return np.where(h_lo > h_b, 0.0, loss)


def shadow_sigma_db(environment: str, state):
    """Shadow-fading standard deviation (dB) of each link in ``state`` (SHADOW_SIGMA_DB)."""
    _check_environment(environment)
    return np.asarray(SHADOW_SIGMA_DB[environment])[_check_state(state)]


def v2v_los_probability(environment: str, d2d_m):
    """LOS probability of a link not blocked by buildings, TR 37.885 Table 6.2-1.

    Highway: min(1, 2.1013e-6 d^2 - 0.002 d + 1.0193) up to 475 m, then
    max(0, 0.54 - 0.001 (d - 475)), which reaches 0 at 1015 m. Urban: min(1, 1.05 exp(-0.0114 d)).
    ``d2d_m`` is the horizontal distance.
    """
    _check_environment(environment)
    d = np.maximum(np.asarray(d2d_m, dtype=float), 0.0)
    if environment == "highway":
        near = np.minimum(1.0, 2.1013e-6 * d * d - 0.002 * d + 1.0193)
        far = np.maximum(0.0, 0.54 - 0.001 * (d - 475.0))
        return np.where(d <= 475.0, near, far)
    return np.minimum(1.0, 1.05 * np.exp(-0.0114 * d))


def v2v_state_probabilities(environment: str, d2d_m, building_blocked=False):
    """(p_los, p_nlosv, p_nlos) of each link.

    TR 37.885 decides NLOS from the geometry: a link is NLOS when buildings block it (urban grid;
    the highway has no buildings). Only a link clear of buildings is drawn at random: LOS with
    v2v_los_probability, NLOSv otherwise. So a building-blocked link gets (0, 0, 1) and a clear
    one (p, 1 - p, 0). ns-3's ThreeGppV2v{Urban,Highway}ChannelConditionModel (buildings module)
    does the same, with its buildings deciding NLOS. Its ProbabilisticV2v*ChannelConditionModel
    uses density-dependent fits from outside 37.885 and is not implemented here.
    """
    p = v2v_los_probability(environment, d2d_m)
    blocked = np.asarray(building_blocked, dtype=bool)
    p_los = np.where(blocked, 0.0, p)
    p_nlosv = np.where(blocked, 0.0, 1.0 - p)
    p_nlos = np.where(blocked, 1.0, 0.0) + 0.0 * p
    return p_los, p_nlosv, p_nlos


def v2v_state_from_uniform(environment: str, d2d_m, uniform, building_blocked=False):
    """Link state (LOS, NLOSV or NLOS, int8) from a uniform draw in [0, 1) per link.

    NLOS where buildings block the link, otherwise LOS when ``uniform`` < p_LOS, else NLOSv.
    """
    p = v2v_los_probability(environment, d2d_m)
    state = np.where(np.asarray(uniform) < p, LOS, NLOSV)
    return np.where(np.asarray(building_blocked, dtype=bool), NLOS, state).astype(np.int8)


def sidelink_snr_db(path_loss_db, tx_power_dbm=TX_POWER_DBM, bandwidth_hz=10e6,
                    noise_figure_db=NOISE_FIGURE_DB, antenna_gain_dbi=ANTENNA_GAIN_DBI):
    """SNR (dB) of a vehicle-to-vehicle link: P_tx + 2 G - PL - N.

    ``antenna_gain_dbi`` is each vehicle's gain, so it counts at both ends. N is the thermal noise
    (-174 dBm/Hz + 10 log10(B) + NF). ``path_loss_db`` is everything between the antennas: path
    loss, blockage and shadowing. Defaults: 23 dBm, 10 MHz, 9 dB NF, 3 dBi (see the module).
    """
    noise = thermal_noise_dbm(bandwidth_hz, noise_figure_db)
    return np.asarray(tx_power_dbm) + 2.0 * np.asarray(antenna_gain_dbi) - np.asarray(path_loss_db) - noise


def sidelink_rate_bps(snr_db, bandwidth_hz, efficiency, max_spectral_efficiency):
    """B x min(efficiency x log2(1 + SNR), max_spectral_efficiency), as in cosim/radio/rates.py."""
    snr = 10.0 ** (np.asarray(snr_db, dtype=float) / 10.0)
    se = np.minimum(efficiency * np.log2(1.0 + snr), max_spectral_efficiency)
    return np.asarray(bandwidth_hz) * se
