import { render } from "preact";
import { App } from "./App";
import "./approvals/store";
import { autoConnect } from "./pages/ConnectPage";
import "./styles.css";

autoConnect();
render(<App />, document.getElementById("app")!);
