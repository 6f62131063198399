r"""Slider explorers for the course notebooks: move a reward, watch the loss and its gradient.

Every builder returns an explorer object.  Put it last in a cell (or pass it to
``display``) to show it; its root ipywidgets widget is ``.widget``.  From
Python, ``.set(name=value, ...)`` moves sliders exactly as dragging them
would, and ``.readouts`` is a dict of the numbers the explorer shows, so the
explorers can be checked without a browser::

    from rmteach.widgets import loss_explorer
    ex = loss_explorer(r_pref=2.0, r_rej=3.0)
    ex.set(r_pref=2.5)
    ex.readouts["loss"]     # == rmteach.numpy.ranking_loss(2.5, 3.0)

Every number shown comes from :mod:`rmteach.numpy`; no formula is written
again here.  The figures are built once (bqplot, drawn by the browser) and
updated in place: a slider step moves a marker or replaces one curve's ``y``,
it never rebuilds a figure.  Each slider carries the CSS class
``rmteach-slider-NAME`` and each readout ``rmteach-readout-NAME``.

Builders: :func:`loss_explorer` (the main one), :func:`preference_explorer`,
:func:`gradient_step_explorer`, :func:`margin_explorer`,
:func:`soft_label_explorer`, :func:`regularizer_explorer`,
:func:`listwise_explorer`, :class:`TrainingMonitor` for training loops,
:func:`training_explorer` (sliders that retrain, notebook 4),
:func:`kl_policy_explorer` (the KL-regularized policy against β, notebook 6),
:func:`calibration_explorer` (reliability diagram, ECE and temperature, notebook 7),
:func:`label_noise_explorer` (the accuracy ceiling of fallible annotators, notebook 7), and
:func:`text_explorer` for a slider whose effect is best told in a few lines of
text.  None of them uses an ``Output`` widget (what ``ipywidgets.interact``
prints into): executed headless by nbclient, a cell with one can block for
minutes (nbclient issue 312; it hung this project's notebook test twice).

One module per explorer; :mod:`rmteach.widgets.base` holds the :class:`Explorer`
class they share and :mod:`rmteach.widgets.panels` the sliders, readouts and
plot panels they are built from.
"""

from rmteach.widgets.base import Explorer
from rmteach.widgets.calibration import CalibrationExplorer, calibration_explorer
from rmteach.widgets.dpo_beta import DPOBetaExplorer, dpo_beta_explorer
from rmteach.widgets.gradient_step import GradientStepExplorer, gradient_step_explorer
from rmteach.widgets.kl_policy import KLPolicyExplorer, kl_policy_explorer
from rmteach.widgets.label_noise import LabelNoiseExplorer, label_noise_explorer
from rmteach.widgets.listwise import ListwiseExplorer, listwise_explorer
from rmteach.widgets.loss import LossExplorer, loss_explorer
from rmteach.widgets.margin import MarginExplorer, margin_explorer
from rmteach.widgets.overoptimization import OveroptimizationExplorer, overoptimization_explorer
from rmteach.widgets.ppo_clip import PPOClipExplorer, ppo_clip_explorer
from rmteach.widgets.ppo_run import PPORunExplorer, ppo_run_explorer
from rmteach.widgets.preference import PreferenceExplorer, preference_explorer
from rmteach.widgets.regularizer import RegularizerExplorer, regularizer_explorer
from rmteach.widgets.soft_label import SoftLabelExplorer, soft_label_explorer
from rmteach.widgets.text import TextExplorer, text_explorer
from rmteach.widgets.training_explorer import TrainingExplorer, training_explorer
from rmteach.widgets.training_monitor import TrainingMonitor

__all__ = [
    "calibration_explorer",
    "CalibrationExplorer",
    "label_noise_explorer",
    "LabelNoiseExplorer",
    "ppo_clip_explorer",
    "ppo_run_explorer",
    "overoptimization_explorer",
    "dpo_beta_explorer",
    "PPOClipExplorer",
    "PPORunExplorer",
    "OveroptimizationExplorer",
    "DPOBetaExplorer",
    "loss_explorer",
    "preference_explorer",
    "gradient_step_explorer",
    "margin_explorer",
    "soft_label_explorer",
    "regularizer_explorer",
    "listwise_explorer",
    "TrainingMonitor",
    "training_explorer",
    "kl_policy_explorer",
    "text_explorer",
    "Explorer",
    "LossExplorer",
    "PreferenceExplorer",
    "GradientStepExplorer",
    "MarginExplorer",
    "SoftLabelExplorer",
    "RegularizerExplorer",
    "ListwiseExplorer",
    "TextExplorer",
    "TrainingExplorer",
    "KLPolicyExplorer",
]

