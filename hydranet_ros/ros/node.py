"""perception_node: the rclpy lifecycle shell around the HydraNet pipeline (Humble and Jazzy).

Thin on purpose: every decision (parameter rules, QoS, which outputs to compute, depth
encoding, LabelInfo content, diagnostics) is a plain function in hydranet_ros/outputs/ (params,
qos, plan, render, diagnostics), and the per-message path (convert and submit:
runtime/intake.py; infer and build every output: outputs/render.py) is tested and fuzzed
without ROS. This module only declares, subscribes and copies the rendered fields into messages.

Life cycle:
- configure: validate parameters, load weights and build the engine (Pipeline.create), make the
  lifecycle publishers and start the frame worker. Failure leaves the node unconfigured, alive,
  and configurable again, with the cause in the log and in /diagnostics.
- activate: subscribe to the camera; publishers go live. deactivate: unsubscribe.
- cleanup / shutdown / error: stop the worker, destroy publishers, free the engine.

Threads: the image callback (executor thread) only converts the message to a numpy frame and
hands it to the FrameWorker, which never blocks; inference and publishing happen in the
worker's one thread, so a slow network drops old frames instead of delaying the executor.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import ParameterException
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, RegionOfInterest

from hydranet_ros.errors import HydraNetError, first_line
from hydranet_ros.msg import HydraNetResult
from hydranet_ros.outputs import diagnostics, fields as output_fields, params, plan as output_plan, qos
from hydranet_ros.outputs import render as rendering
from hydranet_ros.ros.qos import to_rclpy
from hydranet_ros.runtime import intake
from hydranet_ros.runtime.frame_worker import FrameWorker, WorkerStats
from hydranet_ros.runtime.focal import depth_focal_status

try:  # vision_msgs is optional: without it only semantic/label_info is missing
    from vision_msgs.msg import LabelInfo, VisionClass
except ImportError:
    LabelInfo = VisionClass = None

NODE_NAME = "perception_node"
SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE
_MESSAGE_CLASSES = {
    rendering.IMAGE: Image, rendering.CAMERA_INFO: CameraInfo, rendering.REGION_OF_INTEREST: RegionOfInterest,
    rendering.RESULT: HydraNetResult,
    **({rendering.LABEL_INFO: LabelInfo, rendering.VISION_CLASS: VisionClass} if LabelInfo is not None else {}),
}


def _descriptor(spec: params.ParamSpec) -> ParameterDescriptor:
    fields = params.describe(spec)
    descriptor = ParameterDescriptor(
        name=spec.name,
        description=fields["description"],
        additional_constraints=fields["additional_constraints"],
        read_only=fields["read_only"],
    )
    if fields["integer_range"]:
        low, high = fields["integer_range"]
        descriptor.integer_range = [IntegerRange(from_value=low, to_value=high, step=0)]
    if fields["floating_point_range"]:
        low, high = fields["floating_point_range"]
        descriptor.floating_point_range = [FloatingPointRange(from_value=low, to_value=high, step=0.0)]
    return descriptor


def _to_ros(message: rendering.Message, built: dict[int, Any], into: Any = None) -> Any:
    """The rclpy message for a rendered Message: fields copied as they are (already in the types
    rclpy's setters store without a per-element check). A Message in two places (the labels image,
    published and nested in the fused message) becomes one object: ``built`` holds this frame's.
    Nested types the node has no class for (std_msgs/Header, builtin_interfaces/Time) are filled
    into the default instance their parent already holds."""
    if into is None:
        if id(message) in built:
            return built[id(message)]
        into = built[id(message)] = _MESSAGE_CLASSES[message.type]()
    for name, value in message.fields.items():
        if isinstance(value, rendering.Message):
            if value.type not in _MESSAGE_CLASSES:
                _to_ros(value, built, into=getattr(into, name))
                continue
            value = _to_ros(value, built)
        elif isinstance(value, list):
            value = [_to_ros(item, built) if isinstance(item, rendering.Message) else item for item in value]
        setattr(into, name, value)
    return into


class PerceptionNode(LifecycleNode):
    """Semantic labels, metric depth and their metadata for every camera frame."""

    def __init__(self, *, node_name: str = NODE_NAME, **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        self._declare_problems: dict[str, str] = {}
        for spec in params.PARAMETERS:
            self._declare(spec)
        # Registered after declaring: values from YAML/launch are checked in on_configure, where
        # a refusal keeps the node alive instead of raising out of the constructor.
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._live = params.LiveSettings.from_values(self._values())

        self._state = "unconfigured"
        self._problem = ""
        self._pipeline: Any = None
        self._info: dict[str, Any] = {}
        self._worker: FrameWorker | None = None
        self._output_pubs: dict[str, Any] = {}
        self._label_info_pub: Any = None
        self._label_info_frame_id: str | None = None
        self._input_subs: list[Any] = []
        self._camera_info: Any = None
        self._depth_focal: str | None = None  # where depth's focal length came from, last frame
        self._counters: Counter[str] = Counter()
        self._counters_lock = threading.Lock()
        self._image_warnings = diagnostics.RejectionThrottle(interval_s=5.0)  # executor thread
        self._info_warnings = diagnostics.RejectionThrottle(interval_s=5.0)  # worker thread
        self._last_timings: dict[str, float] = {}
        self._last_stats: WorkerStats | None = None
        self._last_report_at = time.monotonic()

        # /diagnostics is a plain publisher: it reports in every state, including a failed configure.
        self._diagnostics_pub = self.create_publisher(
            DiagnosticArray, "/diagnostics", to_rclpy(qos.DIAGNOSTICS_QOS))
        # On steady time, not ROS time: under `ros2 bag play --clock` with use_sim_time a ROS-time
        # timer waits for the first /clock and stops while the bag is paused, and the node's health
        # would go unreported exactly then. Its messages are still stamped with ROS time.
        self._steady_clock = Clock(clock_type=ClockType.STEADY_TIME)
        self._diagnostics_timer = self._every(float(self.get_parameter("diagnostics_period").value), self._publish_diagnostics)

    def _every(self, period_s: float, callback: Any) -> Any:
        return self.create_timer(period_s, callback, clock=self._steady_clock)

    # -- parameters ---------------------------------------------------------------------------

    def _declare(self, spec: params.ParamSpec) -> None:
        try:
            self.declare_parameter(spec.name, spec.default, _descriptor(spec))
        except ParameterException as exc:
            # A value from YAML or launch of the wrong type or out of range: keep the default,
            # remember why, and refuse to configure until it is fixed.
            self._declare_problems[spec.name] = f"{spec.name}: {exc}"
            self.declare_parameter(spec.name, spec.default, _descriptor(spec), ignore_override=True)
            self.get_logger().error(f"parameter {spec.name} refused: {exc}")

    def _values(self) -> dict[str, Any]:
        return {name: self.get_parameter(name).value for name in params.SPECS}

    def _on_set_parameters(self, parameters: list) -> SetParametersResult:
        changes = {p.name: p.value for p in parameters if p.name in params.SPECS}
        if not changes:
            return SetParametersResult(successful=True)
        current = self._values()
        reason = params.change_refusal(changes, current, configured=self._pipeline is not None)
        if reason:
            self.get_logger().warning(f"parameter change refused: {reason}")
            return SetParametersResult(successful=False, reason=reason)
        self._live = params.LiveSettings.from_values({**current, **changes})
        for name in changes:
            self._declare_problems.pop(name, None)
        return SetParametersResult(successful=True)

    # -- life cycle -----------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        values = self._values()
        problems = {**self._declare_problems, **params.validate_all(values)}
        if problems:
            return self._configure_failed("parameters refused: " + "; ".join(problems.values()))
        try:
            # Imported here: torch and the engines load only when a node is configured.
            from hydranet_ros.runtime.memory_fallback import MemoryFallbackPipeline
            from hydranet_ros.runtime.pipeline import Pipeline, PipelineConfig

            config = PipelineConfig(**params.pipeline_kwargs(values))
            # Out of GPU memory on the first frame: a smaller input size, or a clear error if strict.
            pipeline = MemoryFallbackPipeline(Pipeline.create(config), strict=config.strict)
        except HydraNetError as exc:  # WeightsError, EngineError, ...: the file or setting and the cause
            return self._configure_failed(f"cannot build the pipeline: {first_line(exc)}")
        except Exception as exc:  # noqa: BLE001 - a bug, named by its type; the node stays up all the same
            return self._configure_failed(f"cannot build the pipeline: {type(exc).__name__}: {first_line(exc)}")

        self._pipeline, self._info, self._problem = pipeline, dict(pipeline.info), ""
        self._depth_focal = None
        self._live = params.LiveSettings.from_values(values)
        output_qos = to_rclpy(qos.qos_settings(values["output_qos"], values["output_depth"]))
        self._output_pubs = {
            name: self.create_lifecycle_publisher(_MESSAGE_CLASSES[spec.message], spec.topic, output_qos)
            for name, spec in output_plan.OUTPUTS.items()
        }
        if LabelInfo is None:
            self.get_logger().warning(
                "vision_msgs is not installed: semantic/label_info is not published", once=True)
        else:
            self._label_info_pub = self.create_lifecycle_publisher(
                LabelInfo, output_plan.LABEL_INFO_TOPIC, to_rclpy(qos.LABEL_INFO_QOS))
        self._label_info_frame_id = None
        self._worker = FrameWorker(process=self._infer, on_result=self._publish,
                                   on_error=self._on_worker_error).start()
        self._last_stats, self._last_report_at = None, time.monotonic()
        self.destroy_timer(self._diagnostics_timer)
        self._diagnostics_timer = self._every(float(values["diagnostics_period"]), self._publish_diagnostics)
        self._state = "inactive"
        self.get_logger().info(
            "configured: " + ", ".join(f"{key}={value}" for key, value in sorted(self._info.items())))
        return SUCCESS

    def _configure_failed(self, problem: str) -> TransitionCallbackReturn:
        self._problem = problem
        self.get_logger().error(problem)
        return FAILURE  # back to unconfigured; the node stays up and can be configured again

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_activate(state)  # enables the lifecycle publishers
        if result != SUCCESS:
            return result
        values = self._values()
        input_qos = to_rclpy(qos.qos_settings(values["input_qos"], values["input_depth"]))
        if values["compressed"]:
            self._input_subs.append(self.create_subscription(
                CompressedImage, "image/compressed", self._on_compressed, input_qos))
        else:
            self._input_subs.append(self.create_subscription(Image, "image", self._on_image, input_qos))
        if values["use_camera_info"]:
            self._input_subs.append(self.create_subscription(
                CameraInfo, "camera_info", self._on_camera_info, input_qos))
        self._state = "active"
        return SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._unsubscribe()
        self._state = "inactive"
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.release()
        self._state = "unconfigured"
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.release()
        self._state = "finalized"
        return super().on_shutdown(state)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error(f"error during a transition from {state.label}; releasing the engine")
        self.release()
        self._state = "unconfigured"
        return SUCCESS  # error processing done: back to unconfigured

    def _unsubscribe(self) -> None:
        for subscription in self._input_subs:
            self.destroy_subscription(subscription)
        self._input_subs = []
        self._camera_info = None

    def release(self) -> None:
        """Stop the worker and free publishers and engine (also called from main on exit)."""
        self._unsubscribe()
        if self._worker is not None:
            if not self._worker.stop(timeout=10.0):
                self.get_logger().warning("the frame in progress did not finish within 10 s; left behind")
            self._last_stats = self._worker.stats()
            self._worker = None
        for publisher in self._output_pubs.values():
            self.destroy_lifecycle_publisher(publisher)
        if self._label_info_pub is not None:
            self.destroy_lifecycle_publisher(self._label_info_pub)
        self._output_pubs, self._label_info_pub = {}, None
        self._pipeline, self._info = None, {}
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()  # give the engine's GPU memory back to other processes

    # -- input (executor thread; never waits for inference) -------------------------------------

    def _on_image(self, msg: Image) -> None:
        self._take(msg, compressed=False)

    def _on_compressed(self, msg: CompressedImage) -> None:
        self._take(msg, compressed=True)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info = msg  # one reference swap; the worker reads whichever is newest

    def _plan(self, *, have_camera_info: bool, label_info_due: bool = False) -> output_plan.FramePlan:
        subscribers = {name: publisher.get_subscription_count() for name, publisher in self._output_pubs.items()}
        return output_plan.plan_frame(self._live.publish, subscribers, have_camera_info=have_camera_info,
                                      label_info_due=label_info_due)

    def _take(self, msg: Any, *, compressed: bool) -> None:
        worker = self._worker
        if worker is None:
            return
        camera_info = self._camera_info
        if not self._plan(have_camera_info=camera_info is not None).publishes:
            self._count("frames_skipped_no_subscribers")
            return
        refusal = intake.offer(worker, msg, compressed=compressed, max_pixels=self._live.max_input_pixels,
                               camera_info=camera_info)
        if refusal is not None:
            warn, suppressed = self._image_warnings.check(refusal.reason, time.monotonic())
            if warn:
                more = f" ({suppressed} more like it since the last warning)" if suppressed else ""
                self.get_logger().warning(f"dropped an input image [{refusal.reason}]: {refusal.detail}{more}")

    def _count(self, key: str) -> None:
        with self._counters_lock:
            self._counters[key] += 1

    # -- inference and output (worker thread) ----------------------------------------------------

    def _infer(self, frame: intake.Frame) -> rendering.Rendered | None:
        live = self._live
        # LabelInfo is latched: sent with the first frame and again when the frame id changes.
        label_info_due = self._label_info_pub is not None and output_fields.label_info_due(
            self._label_info_frame_id, frame.header.frame_id)
        plan = self._plan(have_camera_info=frame.camera_info is not None, label_info_due=label_info_due)
        return rendering.render(self._pipeline, frame, plan, depth_encoding=live.depth_encoding,
                                overlay_alpha=live.overlay_alpha)

    def _publish(self, frame: intake.Frame, rendered: rendering.Rendered | None) -> None:
        if rendered is None:  # the last subscriber left while the frame waited
            return
        if rendered.depth_focal is not None and rendered.depth_focal != self._depth_focal:
            self._note_depth_focal(rendered.depth_focal)
        if rendered.timings_ms:
            self._last_timings = rendered.timings_ms
        self._count_camera_info_problem(rendered.camera_info_problem)
        built: dict[int, Any] = {}
        for name, message in rendered.messages.items():
            publisher = self._label_info_pub if name == "label_info" else self._output_pubs[name]
            publisher.publish(_to_ros(message, built))
        if "label_info" in rendered.messages:
            self._label_info_frame_id = frame.header.frame_id

    def _note_depth_focal(self, source: str) -> None:
        """Say once (log and /diagnostics) where metric depth's focal length comes from, and again
        only when that changes (a CameraInfo arrives, or stops being usable)."""
        self._depth_focal = source
        text = depth_focal_status(source, self._pipeline.training_camera)
        self._info["depth_focal"] = text
        if source == "camera":
            self.get_logger().info(f"depth: {text}")
        else:
            self.get_logger().warning(f"depth: {text} (publish the camera's camera_info)")

    def _count_camera_info_problem(self, problem: Exception | None) -> None:
        if problem is None:
            return
        self._count(f"camera_info_rejected.{problem.reason}")
        warn, suppressed = self._info_warnings.check(problem.reason, time.monotonic())
        if warn:
            more = f" ({suppressed} more since the last warning)" if suppressed else ""
            self.get_logger().warning(f"camera_info not republished [{problem.reason}]: {problem}{more}")

    def _on_worker_error(self, frame: intake.Frame, exc: BaseException) -> None:
        self.get_logger().error(f"processing a frame failed: {type(exc).__name__}: {exc}",
                                throttle_duration_sec=5.0)

    # -- diagnostics ---------------------------------------------------------------------------

    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        worker = self._worker
        current = worker.stats() if worker is not None else None
        with self._counters_lock:
            counters = dict(self._counters)
        report = diagnostics.diagnostics_report(
            state=self._state, current=current, previous=self._last_stats, period_s=now - self._last_report_at,
            info=self._info, counters=counters, timings_ms=self._last_timings, problem=self._problem)
        self._last_stats, self._last_report_at = current, now
        status = DiagnosticStatus()
        status.level = bytes([report.level])  # a ROS `byte` is a length-1 bytes object in Python
        status.name = f"{self.get_fully_qualified_name()}: HydraNet perception"
        status.message = report.message
        status.hardware_id = str(self._info.get("device", ""))
        status.values = [KeyValue(key=key, value=value) for key, value in report.values]
        array_msg = DiagnosticArray()
        array_msg.header.stamp = self.get_clock().now().to_msg()  # ROS time: sim time under replay
        array_msg.status = [status]
        self._diagnostics_pub.publish(array_msg)
