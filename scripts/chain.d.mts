import type { ChildProcess } from 'node:child_process';

export declare const LOCAL_DEV_ACCESS_KEY_ID: string;
export declare const LOCAL_DEV_SECRET_ACCESS_KEY: string;

export type AppName = 'proxy-server' | 'proxy-client' | 'gateway';

export interface RunningApp {
  app: AppName;
  url: string;
  port: number;
  child: ChildProcess;
  output(): string;
  stop(graceMs?: number): Promise<void>;
}

export declare function startApp(
  app: AppName,
  env: Record<string, string>,
  options?: { echo?: boolean; nodeArgs?: string[]; startTimeoutMs?: number },
): Promise<RunningApp>;

export interface RunningChain {
  server: RunningApp;
  gateway: RunningApp;
  gatewayUrl: string;
  client: RunningApp;
  proxyUrl: string;
  stop(): Promise<void>;
}

export declare function startChain(options?: {
  serverPort?: number;
  gatewayPort?: number;
  clientPort?: number;
  stage?: string;
  server?: Record<string, string>;
  gateway?: Record<string, string>;
  client?: Record<string, string>;
  echo?: boolean;
}): Promise<RunningChain>;
