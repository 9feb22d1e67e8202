// Uploads an adapter to the REST API from the browser with a progress bar, and shows the
// API's own error (code and message) when it is refused.
(function () {
  const form = document.getElementById("upload-form");
  if (!form) return;
  const progress = document.getElementById("upload-progress");
  const statusLine = document.getElementById("upload-status");
  const errorLine = document.getElementById("upload-error");

  // As `adapterctl push` does: a model.sig at the top of the directory is its signature, not one of its files.
  const SIGNATURE_FILE = "model.sig";

  function directoryFiles() {
    return Array.from(form.elements.directory.files).map((file) => {
      // Drop the chosen directory's own name: the registry wants paths inside it.
      const parts = (file.webkitRelativePath || file.name).split("/");
      return [parts.slice(1).join("/") || file.name, file];
    });
  }

  function chosenFiles() {
    const fromDirectory = directoryFiles().filter(([path]) => path !== SIGNATURE_FILE);
    const loose = Array.from(form.elements.files.files).map((file) => [file.name, file]);
    return fromDirectory.concat(loose);
  }

  function chosenSignature() {
    const chosen = form.elements.signature.files[0];
    if (chosen) return chosen;
    const beside = directoryFiles().find(([path]) => path === SIGNATURE_FILE);
    return beside ? beside[1] : null;
  }

  function showError(text) {
    errorLine.textContent = text;
    errorLine.hidden = false;
    statusLine.textContent = "";
    progress.hidden = true;
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    errorLine.hidden = true;
    const files = chosenFiles();
    if (files.length === 0) {
      showError("Choose the adapter directory or its files first.");
      return;
    }
    const data = new FormData();
    for (const field of ["name", "base", "parent", "provenance"]) {
      const value = form.elements[field].value.trim();
      if (value) data.append(field, value);
    }
    for (const [path, file] of files) data.append("file", file, path);
    // The signature travels as its own part (the API's 'signature'), never as one of the adapter's files.
    const signature = chosenSignature();
    if (signature) data.append("signature", signature, SIGNATURE_FILE);

    const request = new XMLHttpRequest();
    request.open("POST", form.dataset.api);
    request.setRequestHeader("X-CSRFToken", form.elements.csrfmiddlewaretoken.value);
    request.setRequestHeader("Accept", "application/json");
    progress.hidden = false;
    progress.value = 0;
    statusLine.textContent = "Uploading…";
    request.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) {
        progress.value = Math.round((100 * e.loaded) / e.total);
        statusLine.textContent = progress.value < 100 ? `Uploading… ${progress.value}%` : "Validating…";
      }
    });
    request.addEventListener("load", () => {
      let body = null;
      try { body = JSON.parse(request.responseText); } catch (e) { /* not JSON */ }
      const page = body ? `${form.dataset.pagePrefix}${body.namespace}/${body.name}/v${body.number}/` : "";
      if (request.status === 201) {
        statusLine.textContent = "Registered.";
        window.location.assign(page);
      } else if (request.status === 200) {
        // The same files are already a version (the API answers 200, not 201): say which, stay here.
        progress.hidden = true;
        const link = document.createElement("a");
        link.href = page;
        link.textContent = body.ref;
        statusLine.replaceChildren("Already registered as ", link, " (the same files); nothing new was stored.");
      } else if (body && body.error) {
        showError(`${body.error.code}: ${body.error.message}`);
      } else {
        showError(`The registry answered HTTP ${request.status}.`);
      }
    });
    request.addEventListener("error", () => showError("The upload was interrupted: check the connection and try again."));
    request.send(data);
  });
})();
