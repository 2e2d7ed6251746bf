// Types for `tsc -p client` only (nothing here is loaded by the page). The client's classic
// scripts share one namespace, window: protocol.js (built from common/browser.ts) puts the
// protocol there, then stats.js, camera.js and session.js each put one factory there and main.js
// wires them. These are the shapes of those globals, so each script is checked against the others
// and against the protocol's own types, read from common/ rather than copied.

import type * as protocol from '../common/protocol.ts';
import type { FrameMeta, readFrameMeta } from '../common/frame-meta.ts';

declare global {
  namespace RenderDispatch {
    /** window.RenderDispatchProtocol: common/browser.ts's bundle, frozen. */
    type Protocol = Readonly<typeof protocol & { readFrameMeta: typeof readFrameMeta }>;
    type Camera = protocol.Camera;
    type Hello = Extract<protocol.RenderToBrowser, { type: 'hello' }>;
    type Queued = Extract<protocol.DispatcherToBrowser, { type: 'queued' }>;
    type Frame = FrameMeta;
    /** The dashboard's (dashboard.js): the operator API's shapes. */
    type ServerView = protocol.ServerView;
    type DashboardSummary = protocol.DashboardSummary;
    type DashboardEvent = protocol.DashboardEvent;
    type DashboardMessage = protocol.DashboardMessage;

    /** What the page is doing; 'notice' is a remark from the render server, not a state. */
    type State = 'idle' | 'connecting' | 'waiting' | 'streaming' | 'reconnecting' | 'none' | 'disconnected' | 'error' | 'notice';
    interface StateDetails {
      /** connecting: the render server's URL, without its ticket. */
      server?: string;
      /** waiting: the place in line (1 is next), the line's length, the dispatcher's estimate. */
      position?: number;
      size?: number;
      estimateMs?: number;
      /** none: why, and whether waiting in line is worth offering. */
      reason?: string;
      canWait?: boolean;
      /** disconnected: the dispatcher could not be reached; asking again is up to the user. */
      canRetry?: boolean;
    }

    /** What session.js tells the page. */
    interface SessionEvents {
      state(name: State, message: string, details?: StateDetails): void;
      hello(hello: Hello): void;
      frame(buffer: ArrayBuffer, meta: Frame | null): void;
      /** The render server's clock minus ours, from a ping. */
      pong(offsetMs: number): void;
    }
    interface Session {
      session: string;
      start(wait?: boolean): void;
      sendCamera(camera: Camera): number;
      frameShown(frameSeq: number): void;
    }

    interface CameraControl {
      set(camera: Camera): void;
      get(): Camera;
    }

    interface StatsSnapshot {
      fps: number;
      bytesPerSecond: number;
      frameBytes: number;
      serverFps: number;
      latencyMs: number | null;
      inputLatencyMs: number | null;
    }
    interface Stats {
      clockOffset(offsetMs: number): void;
      inputSent(seq: number): void;
      frameShown(bytes: number, meta: Frame | null): void;
      snapshot(): StatsSnapshot;
    }

    /** window.renderDispatch: what the page shows (the browser tests read it through this type). */
    interface PageView {
      state: State;
      message: string;
      framesShown: number;
      fps: number;
      server: string | null;
      position: number | null;
      queueSize: number | null;
      estimateMs: number | null;
      camera: Camera | null;
      session: string | null;
      inputSent: number;
      inputShown: number;
      history: { state: State; message: string; at: number }[];
      stats?: StatsSnapshot;
    }
  }

  /** uPlot's classic-script build (/vendor/uplot.js), as much of it as the dashboard uses. */
  class uPlot {
    constructor(options: object, data: (number | null)[][], target: HTMLElement);
    setData(data: (number | null)[][]): void;
    setSize(size: { width: number; height: number }): void;
  }

  interface Window {
    RenderDispatchProtocol: RenderDispatch.Protocol;
    RenderDispatchStats: () => RenderDispatch.Stats;
    RenderDispatchCamera: (element: HTMLElement, onChange: (camera: RenderDispatch.Camera) => void) => RenderDispatch.CameraControl;
    RenderDispatchSession: (dispatcherUrl: string, on: RenderDispatch.SessionEvents) => RenderDispatch.Session;
    renderDispatch: RenderDispatch.PageView;
  }
}
