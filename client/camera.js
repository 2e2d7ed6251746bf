// Camera control on the streamed image: dragging orbits the camera about the torus, the wheel
// zooms. At most one update per animation frame is handed on, always the latest.
// A classic script (pages opened from disk cannot load modules): defines RenderDispatchCamera.
'use strict';
(function () {
  var P = window.RenderDispatchProtocol;
  var RADIANS_PER_PIXEL = 0.01;
  var ZOOM_PER_WHEEL_UNIT = 0.001;

  /** @param {number} value @param {number} min @param {number} max */
  function clamp(value, min, max) {
    return Math.min(max, Math.max(min, value));
  }

  /**
   * @param {HTMLElement} element
   * @param {(camera: RenderDispatch.Camera) => void} onChange
   * @returns {RenderDispatch.CameraControl}
   */
  function createCameraControl(element, onChange) {
    var camera = { yaw: P.DEFAULT_CAMERA.yaw, pitch: P.DEFAULT_CAMERA.pitch, distance: P.DEFAULT_CAMERA.distance };
    /** @type {{ x: number, y: number } | null} */
    var drag = null;
    var scheduled = false;

    function changed() {
      if (scheduled) return;
      scheduled = true;
      requestAnimationFrame(function () {
        scheduled = false;
        onChange({ yaw: camera.yaw, pitch: camera.pitch, distance: camera.distance });
      });
    }

    element.addEventListener('pointerdown', function (event) {
      drag = { x: event.clientX, y: event.clientY };
      element.setPointerCapture(event.pointerId);
    });
    element.addEventListener('pointermove', function (event) {
      if (!drag) return;
      // Dragging right turns the torus right, as if the hand moved it: the camera goes the other way.
      camera.yaw -= (event.clientX - drag.x) * RADIANS_PER_PIXEL;
      camera.pitch = clamp(camera.pitch + (event.clientY - drag.y) * RADIANS_PER_PIXEL, -P.CAMERA_LIMITS.pitch, P.CAMERA_LIMITS.pitch);
      drag = { x: event.clientX, y: event.clientY };
      changed();
    });
    function endDrag() { drag = null; }
    element.addEventListener('pointerup', endDrag);
    element.addEventListener('pointercancel', endDrag);
    element.addEventListener('wheel', function (event) {
      event.preventDefault();
      camera.distance = clamp(camera.distance * Math.exp(event.deltaY * ZOOM_PER_WHEEL_UNIT), P.CAMERA_LIMITS.distanceMin, P.CAMERA_LIMITS.distanceMax);
      changed();
    }, { passive: false });

    return {
      /** The server's camera (from its hello): where a returning page left it. */
      set: function (next) {
        camera = { yaw: next.yaw, pitch: next.pitch, distance: next.distance };
      },
      get: function () {
        return { yaw: camera.yaw, pitch: camera.pitch, distance: camera.distance };
      },
    };
  }

  window.RenderDispatchCamera = createCameraControl;
})();
