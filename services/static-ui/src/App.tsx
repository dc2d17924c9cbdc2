/** Routes to pages; every page sits in the same shell. */

import type { FunctionComponent } from "preact";
import { useEffect } from "preact/hooks";
import { connection } from "./app/connection";
import { navigate, route } from "./app/router";
import { useStore } from "./app/store";
import { ErrorBoundary } from "./components/ErrorBoundary";
import { Shell, type NavItem } from "./components/Shell";
import { AgentsPage } from "./pages/AgentsPage";
import { ApprovalsPage } from "./pages/ApprovalsPage";
import { ChatPage } from "./pages/ChatPage";
import { ConfigPage } from "./pages/ConfigPage";
import { ConnectPage } from "./pages/ConnectPage";
import { CronPage } from "./pages/CronPage";
import { DevicesPage } from "./pages/DevicesPage";
import { LogsPage } from "./pages/LogsPage";
import { OverviewPage } from "./pages/OverviewPage";
import { SessionsPage } from "./pages/SessionsPage";
import { UsagePage } from "./pages/UsagePage";

interface PageDef extends NavItem {
  title: string;
  component: FunctionComponent;
}

export const PAGES: PageDef[] = [
  { path: "/overview", label: "Overview", title: "Overview", icon: "overview", component: OverviewPage },
  { path: "/chat", label: "Chat", title: "Chat", icon: "chat", component: ChatPage },
  { path: "/sessions", label: "Sessions", title: "Sessions", icon: "sessions", component: SessionsPage },
  { path: "/agents", label: "Agents", title: "Agents", icon: "agents", component: AgentsPage },
  { path: "/approvals", label: "Approvals", title: "Approvals", icon: "approvals", component: ApprovalsPage },
  { path: "/devices", label: "Devices & nodes", title: "Devices & nodes", icon: "devices", component: DevicesPage },
  { path: "/usage", label: "Usage", title: "Usage and cost", icon: "usage", component: UsagePage },
  { path: "/cron", label: "Cron", title: "Cron jobs", icon: "cron", component: CronPage },
  { path: "/config", label: "Config", title: "Configuration", icon: "config", component: ConfigPage },
  { path: "/logs", label: "Logs", title: "Logs", icon: "logs", component: LogsPage },
  { path: "/connect", label: "Connect", title: "Connect", icon: "connect", component: ConnectPage },
];

export function App() {
  const r = useStore(route);
  const page = PAGES.find((p) => p.path === r.path);

  useEffect(() => {
    if (page) return;
    // Unknown or empty route: the overview when a connection exists, else connect.
    navigate(connection.state.get().status === "idle" ? "/connect" : "/overview");
  }, [page]);

  useEffect(() => {
    document.title = page ? `${page.title} · aisopod` : "aisopod";
    // Move focus to the new page for keyboard and screen reader users.
    document.getElementById("main")?.focus({ preventScroll: true });
  }, [page]);

  if (!page) return null;
  const Page = page.component;
  return (
    <Shell nav={PAGES} current={page.path} title={page.title}>
      <ErrorBoundary key={page.path}>
        <Page />
      </ErrorBoundary>
    </Shell>
  );
}
