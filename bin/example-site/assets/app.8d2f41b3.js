document.getElementById('app').textContent = 'Hello from release ' + (document.currentScript ? 'n' : 'N') + '.';
